"""The set of served models: validated at start-up, loaded in the background, looked up per request."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from models.runtime import builtins as defaults
from models.runtime.contract import EncoderBackend
from models.runtime.drift import Drift, OnnxReference, check_floor, measure_drift
from models.runtime.errors import ModelError, ModelLoadError
from models.runtime.factory import create_backend
from models.runtime.folders import ModelDescription, describe_model, resolve_source
from models.runtime.tokenization import TextTokenizer
from service.cache.keys import RowScope
from service.cache.tiers import ResultCache
from service.engine.batcher import BatchStats
from service.engine.cached import CachedRows
from service.engine.health import HealthLimits, Unready, engine_problem
from service.engine.model_engine import EngineConfig, ModelEngine
from service.engine.queue import QueueLimits
from service.errors import ModelNotFoundError, NotReadyError, WrongTaskError
from service.metrics import Metrics
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


class ModelRegistry:
    """Holds one :class:`ModelEngine` per configured model."""

    def __init__(
        self,
        settings: Settings,
        tokenize_pool: Executor,
        metrics: Metrics | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._cache = cache
        self._tokenize_pool = tokenize_pool
        self._models: dict[str, LoadedModel] = {}
        self._ready = threading.Event()
        self._draining = False
        self._health = HealthLimits(settings.ready_max_batch_s, settings.ready_saturated_s)
        self.failure: str | None = None

    @property
    def ready(self) -> bool:
        """Whether every model is loaded and warmed up."""
        return self._ready.is_set()

    @property
    def draining(self) -> bool:
        """Whether the server is shutting down (set by :meth:`start_draining`)."""
        return self._draining

    def start_draining(self) -> None:
        """From now on /ready answers 503, so that balancers stop routing here; requests are still served."""
        self._draining = True

    def readiness(self) -> Unready | None:
        """Why this replica should get no new requests now (what /ready reports), or None when it should."""
        if self.failure:
            return Unready("load_failed", f"model loading failed: {self.failure}")
        if not self.ready:
            return Unready("not_ready", "models are still loading")
        if self._draining:
            return Unready("draining", "shutting down: finishing in-flight requests")
        for loaded in self.models:
            problem = engine_problem(loaded.engine, self._health)
            if problem is not None:
                return problem
        return None

    @property
    def models(self) -> list[LoadedModel]:
        """Loaded models, in configuration order."""
        return [self._models[s.name] for s in self._settings.models if s.name in self._models]

    def validate(self) -> None:
        """Cheap start-up checks of every model folder, so that a bad one fails fast and clearly."""
        for spec in self._settings.models:
            if defaults.builtin_needs_build(spec.source, self._settings.home):
                continue  # built (minutes) in the background load
            self._describe(spec, progress=False)

    def load_all(self) -> None:
        """Load and warm up every model (blocking; run in a thread). Sets ``failure`` on error."""
        try:
            for spec in self._settings.models:
                self._models[spec.name] = self._load(spec)
        except ModelError as exc:
            self.failure = str(exc)
            raise
        self._ready.set()

    def _describe(self, spec: ModelSpec, progress: bool) -> ModelDescription:
        try:
            if defaults.is_builtin(spec.source):
                if progress and defaults.builtin_needs_build(spec.source, self._settings.home):
                    build_missing_builtin(spec.source, self._settings.home)
                path = defaults.resolve_builtin(spec.source, self._settings.home)
            else:
                path = resolve_source(spec.source, spec.revision)
            return describe_model(
                path,
                task=None if spec.task == "auto" else spec.task,
                pooling=None if spec.pooling == "auto" else spec.pooling,
                max_tokens=spec.max_input_tokens,
            )
        except ModelLoadError as exc:
            raise ModelLoadError(f"model {spec.name!r}: {exc}") from exc

    def _load(self, spec: ModelSpec) -> LoadedModel:
        started = time.perf_counter()
        description = self._describe(spec, progress=True)
        tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
        backend, runtime = self._backend(spec, description)
        onnx = OnnxReference(self._settings.home / "onnx", self._settings.threads or os.cpu_count() or 1)
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
        engine = ModelEngine(
            spec.name,
            description,
            tokenizer,
            backend,
            self._engine_config(),
            self._tokenize_pool,
            on_batch=self._batch_observer(spec.name),
            cached=self._cached_rows(spec, description, runtime),
        )
        if self._settings.warmup:
            engine.warm_up()
        engine.start()
        seconds = time.perf_counter() - started
        logger.info(
            "model %s loaded (%s, %s %s on %s) in %.1f s",
            spec.name,
            description.task,
            runtime,
            backend.dtype,
            backend.device,
            seconds,
        )
        return LoadedModel(spec, engine, backend.device, runtime, backend.dtype, seconds, drift)

    def _backend(self, spec: ModelSpec, description: ModelDescription) -> tuple[EncoderBackend, str]:
        threads = self._settings.threads or os.cpu_count() or 1
        try:
            return create_backend(
                description,
                spec.runtime,
                spec.device,
                spec.dtype,
                spec.quantize,
                self._settings.home / "onnx",
                threads,
            )
        except ModelLoadError as exc:
            raise ModelLoadError(f"model {spec.name!r}: {exc}") from exc

    def _cached_rows(self, spec: ModelSpec, description: ModelDescription, runtime: str) -> CachedRows | None:
        if self._cache is None:
            return None
        scope = RowScope(
            fingerprint=description.fingerprint,
            runtime=runtime,
            dtype=spec.dtype if spec.quantize == "none" else spec.quantize,
            task=description.task,
            pooling=description.pooling,
            max_tokens=description.max_input_tokens,
        )
        on_join = self._metrics.cache_joins.inc if self._metrics is not None else None
        return CachedRows(self._cache, scope, on_join)

    def _engine_config(self) -> EngineConfig:
        settings = self._settings
        limits = QueueLimits(
            max_requests=settings.max_concurrent_requests,
            max_tokens=settings.max_queue_tokens,
            batch_tokens=settings.max_batch_tokens,
            batch_items=settings.max_batch_requests,
            saturation=settings.ready_queue_fraction,
        )
        return EngineConfig(
            limits, settings.max_wait_ms / 1000, settings.request_timeout_s, settings.inline_tokenize_chars
        )

    def _batch_observer(self, model: str) -> Callable[[BatchStats], None] | None:
        metrics = self._metrics
        if metrics is None:
            return None
        size, tokens = metrics.batch_size.labels(model), metrics.batch_tokens.labels(model)
        padding, seconds = metrics.padding_ratio.labels(model), metrics.batch_duration.labels(model)

        def observe(stats: BatchStats) -> None:
            size.observe(stats.items)
            tokens.observe(stats.padded_tokens)
            padding.observe(1 - stats.tokens / stats.padded_tokens)
            seconds.observe(stats.seconds)

        return observe

    def get(self, name: str | None, task: str) -> ModelEngine:
        """The engine for ``name``, or the first model of ``task`` when no name is given."""
        if not self.ready:
            if self.failure:
                raise NotReadyError("model loading failed; see /ready and the server log")
            raise NotReadyError("models are still loading; retry shortly")
        if name is None:
            for loaded in self.models:
                if loaded.engine.task == task:
                    return loaded.engine
            raise ModelNotFoundError(f"no {task} model is served")
        loaded_model = self._models.get(name)
        if loaded_model is None:
            raise ModelNotFoundError(f"model {name!r} is not served (served: {', '.join(self._models)})")
        if loaded_model.engine.task != task:
            raise WrongTaskError(f"model {name!r} is a {loaded_model.engine.task} model, not {task}")
        return loaded_model.engine

    def close(self) -> None:
        """Stop every engine's inference thread."""
        for loaded in self._models.values():
            loaded.engine.close()
