"""Errors of the offline pipeline; subclasses of the model side's one base, :class:`ModelError`."""

from __future__ import annotations

from models.runtime.errors import ModelError


class DatasetError(ModelError):
    """A dataset could not be fetched, verified, extracted or parsed."""


class TrainingError(ModelError):
    """Training or a compression recipe failed, or was given unusable inputs or configuration."""
