#!/usr/bin/env bash
# The GPU plan in one command (see benchmarks/gpu/plan.py and benchmarks/RESULTS.md, GPU section).
#
#   benchmarks/gpu/run.sh            on the lent GPU machine: installs the carried wheels (.gpu/wheels,
#                                    built here by `make wheels-gpu`), then runs the gpu tests, the
#                                    in-process sweep and the served load within 8 minutes; results in $OUT
#   benchmarks/gpu/run.sh --dry-run  the same plan on CPU with tiny shapes: about a minute on 2 idle cores
#                                    (CI); killed at 4 minutes, so that a hang fails rather than waits
#
# The device call: run(command="bash benchmarks/gpu/run.sh", carry=[".gpu"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [[ "${1:-}" == "--dry-run" ]]; then
    out="${OUT:-$(mktemp -d)}"
    exec timeout 240 "${PYTHON:-.venv/bin/python}" -m benchmarks.gpu.plan --dry-run --out "$out"
fi
carry=.gpu
if ! compgen -G "$carry/wheels/*.whl" >/dev/null; then
    echo "no wheels in $carry/wheels: run 'make wheels-gpu' here first" >&2
    exit 2
fi
# The machine's own torch, transformers, tokenizers, numpy... stay; ours go into a separate folder.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$carry"/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD"
export BERTSERVE_HOME="$PWD/$carry/home" GPURUN_EMBEDDER="$PWD/$carry/all-MiniLM-L6-v2-float16"
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.csv" || true
exec timeout 480 python3 -m benchmarks.gpu.plan --out "$out"
