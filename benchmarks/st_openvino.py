"""sentence-transformers' own OpenVINO backend on the same sentences, for benchmarks.cpu_kernels.

    python benchmarks/st_openvino.py MODEL_FOLDER SENTENCES.json OUT.json ROUNDS

Run by ``benchmarks.cpu_kernels`` with a second interpreter (``--st-python``): ``optimum-intel``, which this
backend needs, pins an older transformers than bertserve's, so it lives in its own virtual environment.
Only the standard library, numpy and sentence-transformers are imported here.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from sentence_transformers import SentenceTransformer


def main() -> None:
    """Write best-of-rounds sentences/s per batch size and the embeddings of every sentence."""
    folder, sentences_file, out, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    texts = json.loads(open(sentences_file, encoding="utf-8").read())  # noqa: SIM115 (short script)
    model = SentenceTransformer(folder, backend="openvino", device="cpu")
    model.encode(texts[:64], batch_size=32)  # warm-up (and the one-off export)
    rates: dict[str, float] = {}
    for _ in range(rounds):
        for size in (1, 8, 32):
            sample = texts[: 256 if size == 1 else len(texts)]
            started = time.perf_counter()
            model.encode(sample, batch_size=size)  # sorts by length itself
            rate = len(sample) / (time.perf_counter() - started)
            rates[f"b{size}"] = max(rates.get(f"b{size}", 0.0), rate)
    rows = model.encode(texts, batch_size=32)
    compiled = model[0].auto_model.request  # a CompiledModel in optimum-intel 2.x
    compiled = getattr(compiled, "get_compiled_model", lambda: compiled)()
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"rates": rates, "rows": np.asarray(rows).tolist(), "precision": str(hint)}, handle)


if __name__ == "__main__":
    main()
