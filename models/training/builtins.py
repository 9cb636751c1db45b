"""Build the embedded default models that are trained rather than shipped (the sentiment classifier)."""

from __future__ import annotations

import logging
from pathlib import Path

from models.runtime.builtins import CLASSIFIER, builtin_needs_build, classifier_path, minilm_path
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


def build_builtin(source: str, home: Path, progress: bool = True) -> None:
    """Build ``source`` under ``home`` if it is a trained builtin that is not there yet."""
    if source == CLASSIFIER and builtin_needs_build(source, home):
        build_classifier(home, progress)
