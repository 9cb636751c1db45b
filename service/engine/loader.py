"""The loader: one model spec in, one running :class:`ModelEngine` out.

Resolves the source (building a missing built-in lazily), describes the folder, loads the tokenizer and the
backend (through the runtime factory), measures drift against the folder's reference and checks the floor,
assembles the engine and warms it up. The registry (lookup, readiness, close) holds what it returns.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from models.runtime import builtins as defaults
from models.runtime.autodtype import Choice, choose_backend
from models.runtime.contract import EncoderBackend
from models.runtime.devices import default_batch_limits, default_length_ratio
from models.runtime.drift import Drift, OnnxReference, check_floor, measure_drift
from models.runtime.errors import ModelLoadError
from models.runtime.folders import ModelDescription, describe_model, resolve_source
from models.runtime.onnx import OnnxBackend
from models.runtime.speed import lone_min_tokens
from models.runtime.tokenization import TextTokenizer
from service.cache.keys import RowScope
from service.cache.tiers import ResultCache
from service.engine.cached import CachedRows
from service.engine.cores import CoreShare
from service.engine.model_engine import EngineConfig, ModelEngine
from service.engine.queue import QueueLimits
from service.settings import ModelSpec, Settings

logger = logging.getLogger(__name__)


def build_missing_builtin(source: str, home: Path) -> None:
    """Train a builtin model that is not built yet (minutes, once per home). The offline pipeline is
    imported here only, lazily: a server whose models are built never loads the training code."""
    try:
        from models.training.builtins import build_builtin
    except ImportError as exc:  # a serving install (the slim image): models are built where torch is
        raise ModelLoadError(
            f"{source} is not built in {home}, and building it needs the training stack "
            "(pip install 'bertserve[torch]', or run `bertserve models prepare` where it is installed)"
        ) from exc
    build_builtin(source, home, progress=True)


def with_prompts(description: ModelDescription, spec: ModelSpec) -> ModelDescription:
    """The folder's prompts with the spec's added (the spec wins on a name) and its default prompt."""
    prompts = {**description.prompts, **(spec.prompts or {})}
    default = spec.default_prompt_name or description.default_prompt_name
    if default is not None and default not in prompts:
        raise ModelLoadError(f"default_prompt_name {default!r} is not one of its prompts")
    return dataclasses.replace(description, prompts=prompts, default_prompt_name=default)


@dataclass(frozen=True)
class LoadedModel:
    """A served model with what /info reports about it."""

    spec: ModelSpec
    engine: ModelEngine
    device: str
    runtime: str
    dtype: str
    load_seconds: float
    drift: Drift | None
    #: Why this runtime and dtype (``dtype: auto`` says what it found).
    reason: str = ""


class ModelLoader:
    """Turns model specs into running engines, with the server's settings, tokenizer pool and cache."""

    def __init__(
        self,
        settings: Settings,
        tokenize_pool: Executor,
        cache: ResultCache | None = None,
    ) -> None:
        self._settings = settings
        self._tokenize_pool = tokenize_pool
        self._cache = cache
        #: One arbiter of the CPU's threads for every model that runs on it.
        self._cores = CoreShare()

    def check(self, spec: ModelSpec) -> None:
        """Cheap start-up check of one model folder, so that a bad one fails fast and clearly."""
        if defaults.builtin_needs_build(spec.source, self._settings.home):
            return  # built (minutes) by :meth:`load`, in the background
        self.describe(spec, build=False)

    def describe(self, spec: ModelSpec, build: bool) -> ModelDescription:
        """The folder ``spec`` names, described; ``build`` trains a missing built-in first."""
        try:
            if defaults.is_builtin(spec.source):
                if build and defaults.builtin_needs_build(spec.source, self._settings.home):
                    build_missing_builtin(spec.source, self._settings.home)
                path = defaults.resolve_builtin(spec.source, self._settings.home)
            else:
                path = resolve_source(spec.source, spec.revision)
            description = describe_model(
                path,
                task=None if spec.task == "auto" else spec.task,
                pooling=None if spec.pooling == "auto" else spec.pooling,
                max_tokens=spec.max_input_tokens,
            )
            return with_prompts(description, spec)
        except ModelLoadError as exc:
            raise ModelLoadError(f"model {spec.name!r}: {exc}") from exc

    def load(self, spec: ModelSpec) -> LoadedModel:
        """Load, check and start one model (blocking: seconds, or minutes for a first built-in build)."""
        started = time.perf_counter()
        description = self.describe(spec, build=True)
        tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
        choice = self._backend(spec, description)
        backend, runtime = choice.backend, choice.runtime
        # Measured at start-up whether or not warm-up is on: the floor must hold before serving.
        onnx = OnnxReference(self._settings.home / "onnx", self._settings.inference_threads)
        drift = measure_drift(description, backend, tokenizer, spec.quantize != "none", onnx)
        if drift is not None:
            logger.info(
                "model %s: drift against %s: min cosine %.4f, mean %.4f",
                spec.name,
                drift.reference,
                drift.min_cosine,
                drift.mean_cosine,
            )
        check_floor(spec.name, drift, spec.min_cosine)
        if isinstance(backend, OnnxBackend) and backend.lone_all_threads:
            backend.lone_min_tokens = lone_min_tokens(backend, tokenizer)
            logger.info(
                "model %s: a batch run alone gets every thread from %d padded tokens on (timed)",
                spec.name,
                backend.lone_min_tokens,
            )
        engine = ModelEngine(
            spec.name,
            description,
            tokenizer,
            backend,
            self._engine_config(spec, backend, description),
            self._tokenize_pool,
            cached=self._cached_rows(description, runtime, backend.dtype),
            cores=self._cores if backend.device == "cpu" else None,
        )
        if self._settings.warmup:
            engine.warm_up()
        engine.start()
        seconds = time.perf_counter() - started
        logger.info(
            "model %s loaded (%s, %s %s on %s, %d stream(s); batches up to %d padded tokens, %d inputs) "
            "in %.1f s",
            spec.name,
            description.task,
            runtime,
            backend.dtype,
            backend.device,
            backend.streams,
            engine.queue.limits.batch_tokens,
            engine.queue.limits.batch_items,
            seconds,
        )
        return LoadedModel(
            spec, engine, backend.device, runtime, backend.dtype, seconds, drift, choice.reason
        )

    def _backend(self, spec: ModelSpec, description: ModelDescription) -> Choice:
        threads = self._settings.inference_threads
        try:
            return choose_backend(
                description,
                spec.runtime,
                spec.device,
                spec.dtype,
                spec.quantize,
                self._settings.home / "onnx",
                threads,
                self._settings.cpu_bfloat16,
                self._settings.inference_streams,
                self._settings.lone_batch_all_threads,
            )
        except ModelLoadError as exc:
            raise ModelLoadError(f"model {spec.name!r}: {exc}") from exc

    def _cached_rows(self, description: ModelDescription, runtime: str, dtype: str) -> CachedRows | None:
        if self._cache is None:
            return None
        scope = RowScope(
            fingerprint=description.fingerprint,
            runtime=runtime,
            dtype=dtype,
            task=description.task,
            pooling=description.pooling,
            max_tokens=description.max_input_tokens,
        )
        return CachedRows(self._cache, scope)

    def _engine_config(
        self, spec: ModelSpec, backend: EncoderBackend, description: ModelDescription
    ) -> EngineConfig:
        settings = self._settings
        batch_tokens, batch_items = settings.max_batch_tokens, settings.max_batch_requests
        if batch_tokens is None or batch_items is None:  # defaults depend on the device (and its memory)
            tokens, items = default_batch_limits(backend.device, description.path, backend.dtype)
            batch_tokens, batch_items = batch_tokens or tokens, batch_items or items
        limits = QueueLimits(
            max_requests=settings.max_concurrent_requests,
            max_tokens=settings.max_queue_tokens,
            batch_tokens=batch_tokens,
            batch_items=batch_items,
            saturation=settings.ready_queue_fraction,
            length_ratio=settings.batch_length_ratio or default_length_ratio(backend.device),
        )
        return EngineConfig(
            limits,
            settings.max_wait_ms / 1000,
            settings.request_timeout_s,
            settings.inline_tokenize_chars,
            spec.long_inputs,
            loop_batch_tokens=settings.loop_batch_tokens,
        )
