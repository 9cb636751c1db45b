#!/usr/bin/env bash
# Builds .gpu/, what benchmarks/gpu/run.sh needs on the lent GPU machine besides the working tree:
#   .gpu/wheels/                     our dependencies that machine lacks (it has Python 3.12, torch,
#                                    transformers, tokenizers, numpy, httpx, pytest...), as wheels for
#                                    CPython 3.12 on manylinux x86-64, at the versions of requirements.lock
#   .gpu/all-MiniLM-L6-v2-float16/   the embedder in float16 (bertserve models quantize --dtype float16)
#   .gpu/home/data/                  the datasets: STS-B sentences, the Rotten Tomatoes held-out slice
# then prints the sizes: the working tree that travels, .gpu/ included, must stay under 64 MiB.
#
#   make wheels-gpu      (or tools/wheels_gpu.sh; PYTHON=... for another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
dest=.gpu
limit_mib=64
# Ours minus the machine's (its package list: the device entry of the tool library). Not carried: torch
# (the machine's CUDA build), onnxruntime, transformers and friends, and uvicorn's reload/websocket extras.
needed=(fastapi starlette pydantic pydantic_core pydantic-settings annotated-types typing-inspection
        typing_extensions python-dotenv uvicorn httptools orjson redis cachetools pytest-asyncio)

pins=()
for name in "${needed[@]}"; do
    pin=$(grep -iE "^${name//[-_]/[-_]}==" requirements.lock || true)
    [[ -n "$pin" ]] || { echo "$name is not in requirements.lock" >&2; exit 1; }
    pins+=("$pin")
done
rm -rf "$dest/wheels"
mkdir -p "$dest/wheels" "$dest/home"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dest/wheels" \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any "${pins[@]}"

bertserve="$(dirname "$python")/bertserve"
"$bertserve" models data
"$bertserve" models quantize builtin:all-minilm-l6-v2 --dtype float16 \
    --out "$dest/all-MiniLM-L6-v2-float16" --overwrite
home="${BERTSERVE_HOME:-$HOME/.cache/bertserve}"
rm -rf "$dest/home/data"
mkdir -p "$dest/home/data"
cp -r "$home/data/sts_b" "$home/data/rotten_tomatoes" "$dest/home/data/"

echo "carried wheels: $(ls "$dest/wheels" | wc -l)"
du -sh "$dest/wheels" "$dest/all-MiniLM-L6-v2-float16" "$dest/home"
tree_kib=$(git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- | tail -1 | cut -f1)
gpu_kib=$(du -sk "$dest" | cut -f1)
total_mib=$(( (tree_kib + gpu_kib) / 1024 ))
echo "travels: working tree $((tree_kib / 1024)) MiB + $dest $((gpu_kib / 1024)) MiB = $total_mib MiB (limit $limit_mib)"
(( total_mib < limit_mib )) || { echo "over the $limit_mib MiB limit" >&2; exit 1; }
