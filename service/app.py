"""``create_app(settings)``: the FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from models.runtime.errors import ModelError
from service import __version__
from service.cache.factory import build_cache
from service.engine.registry import ModelRegistry
from service.http.auth import ApiKeyMiddleware, TokenBuckets
from service.http.deps import make_serving
from service.http.errors import install_error_handlers
from service.http.fast import FastRoutesMiddleware
from service.http.front import ServingApp
from service.http.middleware import BodyLimitMiddleware, RequestObserverMiddleware
from service.http.openapi import install_openapi
from service.logs import AccessLog
from service.metrics import Metrics
from service.routes import classify, embed, meta, openai, rerank, retrieval, root
from service.settings import Settings

logger = logging.getLogger(__name__)

FatalHandler = Callable[[str], None]


def create_app(settings: Settings, on_fatal: FatalHandler | None = None) -> FastAPI:
    """Build the app. Models load in the background once it starts; /ready tells when they are in.

    ``on_fatal`` is called with a one-line reason if a model fails to load after start-up (the CLI
    uses it to stop the server with a non-zero exit code).
    """
    metrics = Metrics()
    tokenize_pool = ThreadPoolExecutor(settings.tokenizer_workers, thread_name_prefix="tokenize")
    cache = build_cache(settings, metrics)
    registry = ModelRegistry(settings, tokenize_pool, metrics, cache)
    access_log = AccessLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _torch_threads(settings.inference_threads)
        # Fast checks first: a missing or malformed model folder stops start-up right here.
        await asyncio.to_thread(registry.validate)
        if cache is not None and cache.redis is not None and not await cache.redis.ping():
            logger.warning(
                "redis cache tier at %s is down at start-up; serving without it", settings.redis_url
            )
        loader = asyncio.create_task(_load_models(registry, on_fatal))
        try:
            yield
        finally:
            if loader.done():
                registry.close()
            if cache is not None:
                await cache.close()
            tokenize_pool.shutdown(wait=False, cancel_futures=True)
            access_log.flush()

    app = ServingApp(
        title="bertserve",
        version=__version__,
        lifespan=lifespan,
        description="Embeddings, classification and reranking with BERT-family encoders.",
        # Off by default: FastAPI looks up the global OpenTelemetry providers on every request.
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access_log = access_log
    app.state.registry = registry
    app.state.serving = make_serving(settings, registry, metrics)
    install_error_handlers(app)
    for module in (embed, classify, openai, rerank, retrieval, root, meta):
        app.include_router(module.router)
    # Innermost: the inference routes, served without FastAPI's per-request machinery.
    fast_routes = {**embed.FAST_ROUTES, **classify.FAST_ROUTES, **openai.FAST_ROUTES}
    routers = [embed.router, classify.router, openai.router]
    app.add_front_middleware(
        FastRoutesMiddleware, routers=routers, serving=app.state.serving, routes=fast_routes
    )
    # Outermost last: metrics see every response, including 413s from the body limit.
    app.add_front_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    keys = settings.load_api_keys()
    buckets = (
        TokenBuckets(len(keys), settings.rate_limit_rps, settings.rate_limit_burst)
        if keys and settings.rate_limit_rps > 0
        else None
    )
    app.add_front_middleware(
        ApiKeyMiddleware, keys=keys, open_paths=settings.auth_open_paths, buckets=buckets
    )
    install_openapi(app, keys_required=bool(keys), open_paths=settings.auth_open_paths)
    if settings.cors_origins:
        # Outside the key check: browsers send preflights without credentials.
        app.add_front_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id", "cache-control"],
            expose_headers=["x-request-id", "x-total-time", "x-compute-tokens"],
        )
    app.add_front_middleware(RequestObserverMiddleware, metrics=metrics, access_log=access_log)
    return app


async def _load_models(registry: ModelRegistry, on_fatal: FatalHandler | None) -> None:
    try:
        await _in_daemon_thread(registry.load_all)
    except Exception as exc:  # any failure here must surface, not die silently in a task
        reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        registry.failure = registry.failure or reason
        logger.error("model loading failed: %s", reason)
        if on_fatal is not None:
            on_fatal(reason)
        return
    logger.info("ready: %s", ", ".join(m.spec.name for m in registry.models))


def _torch_threads(threads: int) -> None:
    """Size PyTorch's intra-op pool, when PyTorch is installed (the slim serving image runs without)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


async def _in_daemon_thread(work: Callable[[], None]) -> None:
    """Run ``work`` on a daemon thread: a shutdown during a long first-start build must not wait for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(None)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        # RuntimeError: the loop closed meanwhile, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="model-loader", daemon=True).start()
    await done
