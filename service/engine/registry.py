"""The registry: the set of served models, looked up per request, with their readiness and failure.

Loading one model (spec -> engine) is the loader's job (:mod:`service.engine.loader`); connecting metrics
is :mod:`service.engine.instruments`'. The registry runs them in configuration order and holds the result.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor

from models.runtime.errors import ModelError, ModelLoadError
from service.cache.tiers import ResultCache
from service.engine.health import HealthLimits, Unready, engine_problem
from service.engine.instruments import EngineMetrics
from service.engine.loader import LoadedModel, ModelLoader
from service.engine.model_engine import ModelEngine, RerankBlend
from service.errors import ModelNotFoundError, NotReadyError, WrongTaskError
from service.metrics import Metrics
from service.settings import Settings


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
        self._loader = ModelLoader(settings, tokenize_pool, cache)
        self._metrics = EngineMetrics(metrics) if metrics is not None else None
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
            self._loader.check(spec)

    def load_all(self) -> None:
        """Load and warm up every model (blocking; run in a thread). Sets ``failure`` on error."""
        try:
            for spec in self._settings.models:
                loaded = self._loader.load(spec)
                self._models[spec.name] = loaded
                if self._metrics is not None:
                    self._metrics.connect(loaded)
            self._link_blends()
        except ModelError as exc:
            self.failure = str(exc)
            raise
        if self._metrics is not None:
            self._metrics.ready(lambda: self.readiness() is None)
        self._ready.set()

    def _link_blends(self) -> None:
        """Give each reranker configured with ``rerank_with`` its partner embedder (checked here: the
        settings only know names, the loaded models know their tasks)."""
        for spec in self._settings.models:
            if spec.rerank_with is None:
                continue
            engine, partner = self._models[spec.name].engine, self._models[spec.rerank_with].engine
            if not engine.serves("rerank"):
                raise ModelLoadError(f"model {spec.name!r} has rerank_with but is not a reranker")
            if partner.task != "embed":
                raise ModelLoadError(
                    f"model {spec.name!r}: rerank_with {spec.rerank_with!r} is a {partner.kind} model, "
                    "not an embedder"
                )
            engine.blend = RerankBlend(partner, spec.rerank_weight)

    def get(self, name: str | None, task: str) -> ModelEngine:
        """The engine for ``name``, or the first model of ``task`` when no name is given."""
        if not self.ready:
            if self.failure:
                raise NotReadyError("model loading failed; see /ready and the server log")
            raise NotReadyError("models are still loading; retry shortly")
        if name is None:
            for loaded in self.models:
                if loaded.engine.serves(task):
                    return loaded.engine
            raise ModelNotFoundError(f"no {task} model is served")
        loaded_model = self._models.get(name)
        if loaded_model is None:
            raise ModelNotFoundError(f"model {name!r} is not served (served: {', '.join(self._models)})")
        if not loaded_model.engine.serves(task):
            raise WrongTaskError(f"model {name!r} is a {loaded_model.engine.kind} model, not {task}")
        return loaded_model.engine

    def close(self) -> None:
        """Stop every engine's inference thread."""
        for loaded in self._models.values():
            loaded.engine.close()
