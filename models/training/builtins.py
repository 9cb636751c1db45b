"""Build the embedded default models that are trained rather than shipped (sentiment classifier, reranker)."""

from __future__ import annotations

import logging
from pathlib import Path

from models.runtime.builtins import (
    CLASSIFIER,
    RERANKER,
    builtin_needs_build,
    classifier_path,
    minilm_path,
    reranker_path,
)
from models.training.finetune import FinetuneConfig, finetune_classifier

logger = logging.getLogger(__name__)


def build_classifier(home: Path, progress: bool = True) -> Path:
    """Fine-tune the default sentiment classifier into the data directory."""
    folder = classifier_path(home)
    logger.info("building the default sentiment classifier into %s (one-off, a few minutes)", folder)
    result = finetune_classifier(minilm_path(), folder, home, FinetuneConfig(), progress=progress)
    logger.info(
        "sentiment classifier built: held-out accuracy %.4f in %.0f s",
        result.heldout_accuracy,
        result.seconds,
    )
    return folder


def build_reranker(home: Path, progress: bool = True) -> Path:
    """Fine-tune the default cross-encoder reranker into the data directory."""
    from models.training.rerank import finetune_reranker, rerank_config

    folder = reranker_path(home)
    logger.info("building the default reranker into %s (one-off, a few minutes)", folder)
    result = finetune_reranker(minilm_path(), folder, home, rerank_config(), progress=progress)
    logger.info("reranker built: STS-B dev Spearman %.4f in %.0f s", result.heldout_accuracy, result.seconds)
    return folder


def build_builtin(source: str, home: Path, progress: bool = True) -> None:
    """Build ``source`` under ``home`` if it is a trained builtin that is not there yet."""
    if not builtin_needs_build(source, home):
        return
    if source == CLASSIFIER:
        build_classifier(home, progress)
    elif source == RERANKER:
        build_reranker(home, progress)
