"""All configuration in one pydantic-settings class.

Every field is an environment variable ``BERTSERVE_<FIELD>`` and a command-line flag
``--<field-with-dashes>`` of ``bertserve serve`` (see :mod:`service.cli`). Nested model specs are given
as JSON in ``BERTSERVE_MODELS`` or as repeated ``--model`` flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.runtime import builtins as defaults
from models.runtime.devices import default_threads
from models.runtime.types import (
    DEVICE_PATTERN,
    Bf16Policy,
    DType,
    PoolingChoice,
    Quantize,
    Runtime,
    TaskChoice,
)


def _default_home() -> Path:
    return Path("~/.cache/bertserve").expanduser()


class ModelSpec(BaseModel):
    """One model to serve."""

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\w.\-/:]+$",
        description="Name clients use in the request's `model` field.",
    )
    source: str = Field(
        description="Local folder, hub id (org/name), or builtin:all-minilm-l6-v2 / builtin:minilm-sentiment "
        "/ builtin:minilm-reranker."
    )
    task: TaskChoice = Field("auto", description="embed, classify, or auto (from config.json).")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto, cpu, cuda or cuda:N.")
    dtype: DType = Field(
        "auto",
        description="Weights dtype. auto: bfloat16 on CPUs with native bfloat16 (avx512_bf16, amx_bf16) when "
        "its outputs stay within cosine 0.9999 of float32 on the built-in sample, else float32 (/info says "
        "why). float32 keeps the exact ONNX Runtime path.",
    )
    runtime: Runtime = Field(
        "auto",
        description="torch (CPU/CUDA, any dtype), onnx (ONNX Runtime, CPU float32/int8) or openvino "
        "(OpenVINO, CPU float32/bfloat16/int8); auto picks the fastest installed for the device and "
        "dtype: onnx for CPU float32 and int8, openvino for CPU bfloat16 where the CPU has it natively "
        "and OpenVINO int8 variants, else torch.",
    )
    pooling: PoolingChoice = Field(
        "auto", description="mean or cls; auto reads 1_Pooling/config.json, else cls."
    )
    max_input_tokens: int | None = Field(
        None, ge=2, description="Lower the model's own token limit (never raise it)."
    )
    revision: str | None = Field(None, description="Hub revision, for hub ids only.")
    quantize: Quantize = Field(
        "none",
        description="Quantize at load time: int8 runs the model's ONNX graph with per-channel int8 weights "
        "(CPU, runtime auto or onnx; built once per model, cached under home).",
    )
    min_cosine: float | None = Field(
        None,
        gt=-1,
        le=1,
        description="Refuse to start unless the model's outputs stay at least this close (cosine, worst "
        "sample) to its base's: a variant's base model, or float32 for quantize=int8.",
    )
    prompts: dict[str, str] | None = Field(
        None,
        description="Named prompts put before inputs (JSON object), added to those of the folder's "
        "config_sentence_transformers.json.",
    )
    default_prompt_name: str | None = Field(
        None, description="The prompt used when a request names none (default: the folder's, else none)."
    )
    long_inputs: Literal["truncate", "error", "chunk"] = Field(
        "truncate",
        description="Embedding inputs over the token limit when a request does not choose: truncate, "
        "error (422), or chunk (overlapping windows, token-weighted mean).",
    )
    rerank_with: str | None = Field(
        None,
        description="For a reranker: the name of a served embedder whose cosine of query and document is "
        "blended into every rerank score, which becomes rerank_weight x the cross-encoder's probability + "
        "(1 - rerank_weight) x the cosine (raw_scores then changes nothing). The two models err "
        "differently: the default reranker blends with all-MiniLM-L6-v2 (STS-B test Spearman 0.857 "
        "against 0.83 alone; benchmarks/RESULTS.md).",
    )
    rerank_weight: float = Field(
        0.5, ge=0, le=1, description="The cross-encoder's share of a blended rerank score (rerank_with)."
    )


def _default_models() -> list[ModelSpec]:
    return [
        ModelSpec(name="all-MiniLM-L6-v2", source=defaults.EMBEDDER),
        ModelSpec(name="minilm-sentiment", source=defaults.CLASSIFIER, task="classify"),
        ModelSpec(
            name="minilm-reranker",
            source=defaults.RERANKER,
            task="classify",
            rerank_with="all-MiniLM-L6-v2",
        ),
    ]


class Settings(BaseSettings):
    """bertserve settings (environment prefix ``BERTSERVE_``)."""

    model_config = SettingsConfigDict(env_prefix="BERTSERVE_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on (0 picks a free one).")
    models: list[ModelSpec] = Field(
        default_factory=_default_models,
        description="Models to serve (JSON list). Default: all-MiniLM-L6-v2, and the sentiment "
        "classifier and the reranker fine-tuned from it.",
    )
    home: Path = Field(
        default_factory=_default_home,
        description="Data directory for built models, datasets and caches.",
    )
    cpu_bfloat16: Bf16Policy = Field(
        "auto",
        description="auto: dtype auto serves bfloat16 where the CPU has it natively, it stays within a "
        "cosine of 0.9999 of float32 and it runs served-like batches at least 1.25x as fast (timed at "
        "the first start on a machine, kept in the home); on: the same without the timing; off: act as "
        "if the CPU had no native bfloat16 (dtype auto serves float32).",
    )
    threads: int = Field(0, ge=0, description="Intra-op threads for inference; 0 means one per CPU core.")
    streams: int = Field(
        0,
        ge=0,
        description="Batches one CPU model (ONNX Runtime, OpenVINO) runs at the same time, each on "
        "threads/streams threads. 0: 2 when there are 2 threads or more, else 1 (one thread per batch "
        "never waits for a straggler preempted by the event loop: measured in benchmarks/RESULTS.md). "
        "PyTorch and GPUs run one batch at a time.",
    )
    lone_batch_all_threads: bool = Field(
        True,
        description="With several streams, an ONNX Runtime batch taken while no other request is in any "
        "CPU model's engine (low load) gets every inference thread, from a second session sharing the "
        "weights, and the next batch of any CPU model waits until it ends: c1 p50 -15% to -32% on 2 "
        "cores, c4 and c64 unchanged, for +40-85 MB per MiniLM-sized model (benchmarks/RESULTS.md). "
        "Only from a batch size timed at start-up: a small int8 batch can be faster on one thread. "
        "Off: every batch runs on threads/streams threads.",
    )
    loop_batch_tokens: int = Field(
        128,
        ge=0,
        description="A CPU model's batch of at most this many padded tokens, taken while nothing else is in "
        "any CPU model's engine (low load), runs on the event loop's thread instead of a batch worker's: "
        "no thread hand-offs (0.25-1.6 ms per request at c1 on 2 cores; benchmarks/RESULTS.md). The loop "
        "reads no sockets meanwhile, so it stays small. 0: every batch runs on a batch worker (so does "
        "every batch when max_wait_ms is set: a batch waits for company there).",
    )
    batch_length_ratio: float | None = Field(
        None,
        ge=1.0,
        description="A batch's longest input has at most this many times the tokens of its shortest (on "
        "CPU, compute grows with padded tokens). Unset: 1.25 on CPU, 2 on CUDA (a GPU wants larger "
        "batches more than less padding).",
    )
    tokenizer_workers: int = Field(2, ge=1, description="Threads that tokenize requests off the event loop.")
    max_batch_tokens: int | None = Field(
        None,
        ge=16,
        description="Padded tokens (items x longest) per model batch. Unset: 512 on CPU (larger batches "
        "use the CPU better up to a point, then only add latency; see benchmarks/RESULTS.md); on CUDA, "
        "sized from the device's free memory at load (a quarter of it for activations, 4096 to 262144).",
    )
    max_batch_requests: int | None = Field(
        None,
        ge=1,
        description="Inputs per model batch at most. Unset: 64 on CPU, 512 on CUDA (a GPU is launch-bound "
        "on small batches; the token budget bounds its memory).",
    )
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="How long a batch may wait for more inputs when the queue is short. 0: a batch "
        "starts as soon as the model is free (inputs arriving meanwhile join the next one).",
    )
    max_concurrent_requests: int = Field(
        512, ge=1, description="Requests admitted per model at once; more get 429 with Retry-After."
    )
    max_queue_tokens: int = Field(
        262_144, ge=64, description="Tokens waiting per model at most; more get 429 with Retry-After."
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="Deadline per request; a request not served in time gets 504."
    )
    inline_tokenize_chars: int = Field(
        1024,
        ge=0,
        description="Requests with at most this many characters in all are tokenized on the event loop "
        "(tens of microseconds, cheaper than two thread hand-offs); larger ones in the tokenizer pool.",
    )
    disconnect_check_ms: float = Field(
        250.0,
        ge=0,
        description="A request still waiting after this long starts watching for its client to disconnect "
        "(then its queued inputs are dropped). 0: from the start; a watch costs ~20 us of CPU per request, "
        "so requests answered sooner skip it.",
    )
    max_client_batch_size: int = Field(256, ge=1, description="Inputs per request at most; more gets 413.")
    max_rerank_documents: int = Field(
        1000,
        ge=1,
        description="Documents per rerank request at most (they are spread over model batches); more "
        "gets 413.",
    )
    max_input_chars: int = Field(100_000, ge=1, description="Characters per input at most; more gets 413.")
    max_total_chars: int = Field(
        2_000_000, ge=1, description="Characters in all inputs of one request at most; more gets 413."
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Request body bytes at most; more gets 413."
    )
    cache: Literal["none", "memory", "redis", "memory+redis"] = Field(
        "memory",
        description="Result cache tiers: none, memory (in-process LRU), redis (shared by replicas), or "
        "memory+redis. A request skips lookups with Cache-Control: no-cache, and the cache entirely "
        "with Cache-Control: no-store.",
    )
    cache_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="In-process cache size bound in bytes (values + overhead)."
    )
    cache_max_entries: int = Field(1_000_000, ge=1, description="In-process cache entries at most.")
    cache_ttl_s: float = Field(0.0, ge=0, description="In-process cache TTL in seconds; 0: none.")
    cache_dtype: Literal["float32", "float16"] = Field(
        "float32", description="How cached rows are stored; float16 halves memory (about 1e-3 error)."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for the redis cache tier.")
    redis_prefix: str = Field("bertserve:", description="Prefix of every Redis key bertserve writes.")
    redis_timeout_ms: float = Field(
        50.0, gt=0, description="Timeout of one Redis call; past it the request computes instead."
    )
    redis_ttl_s: int = Field(86_400, ge=0, description="TTL of Redis entries in seconds; 0: none.")
    redis_backoff_s: float = Field(
        5.0, gt=0, description="After a Redis error, how long to compute without Redis before retrying."
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="API keys accepted as `Authorization: Bearer <key>` (JSON list in the environment; "
        "deliberately no flag, so keys never show in process listings). No keys and no file: open.",
    )
    api_keys_file: Path | None = Field(
        None, description="File with one API key per line (blank lines and # comments skipped)."
    )
    auth_open_paths: list[str] = Field(
        default_factory=lambda: ["/health", "/ready", "/metrics"],
        description="Paths answered without a key when keys are set (repeat the flag for several).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed by CORS (repeat the flag; * for any). Empty: CORS off.",
    )
    rate_limit_rps: float = Field(
        0.0, ge=0, description="Requests per second per API key (token bucket); 0: unlimited."
    )
    rate_limit_burst: int = Field(20, ge=1, description="Token bucket size of the per-key rate limit.")
    shutdown_grace_s: float = Field(
        30.0, gt=0, description="On SIGTERM: stop accepting, finish in-flight requests for at most this long."
    )
    shutdown_delay_s: float = Field(
        5.0,
        ge=0,
        description="On SIGTERM: answer /ready with 503 and keep serving for this long before "
        "stopping, so that a load balancer's health check takes the replica out of rotation first "
        "(longer than its check interval x fall count). 0: stop accepting at once. A second SIGTERM "
        "skips the delay.",
    )
    ready_max_batch_s: float = Field(
        60.0,
        ge=0,
        description="/ready answers 503 (wedged) while a model batch has been running longer than "
        "this, or when a model's batcher thread has died; 0: batch time not checked.",
    )
    ready_queue_fraction: float = Field(
        0.9,
        gt=0,
        le=1,
        description="A model's queue counts as saturated from this fraction of max_concurrent_requests "
        "or max_queue_tokens on.",
    )
    ready_saturated_s: float = Field(
        10.0,
        ge=0,
        description="/ready answers 503 (saturated) once a queue has stayed saturated this long, so a "
        "balancer shifts load to other replicas, and 200 again when it drains; 0: never.",
    )
    warmup: bool = Field(True, description="Run one batch per model before reporting ready.")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line (with request ids); text: plain lines."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry spans and metrics, when an OpenTelemetry provider is "
        "configured in the process. Off: no per-request provider lookups (a few % of throughput).",
    )

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        return Path(os.path.expanduser(str(value))) if value is not None else value

    @field_validator("api_keys_file")
    @classmethod
    def _readable_keys_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"api_keys_file {value} does not exist")
        return value

    @property
    def inference_threads(self) -> int:
        """``threads``, with 0 resolved to the runtime's one default (a thread per core)."""
        return self.threads or default_threads()

    @property
    def inference_streams(self) -> int:
        """``streams``, with 0 resolved: two concurrent batches when there are two threads or more."""
        return self.streams or min(2, self.inference_threads)

    def load_api_keys(self) -> list[bytes]:
        """Every configured key, from the environment and from the keys file."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            for line in self.api_keys_file.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    keys.append(line.strip())
        return [key.encode() for key in keys if key]

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [spec.name for spec in self.models]
        if not names:
            raise ValueError("at least one model must be configured")
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for spec in self.models:
            if spec.rerank_with is not None and spec.rerank_with not in set(names) - {spec.name}:
                raise ValueError(
                    f"model {spec.name!r}: rerank_with {spec.rerank_with!r} names no other served model"
                )
        return self
