"""ONNX Runtime backend (CPU): an exported graph run without the GIL.

On CPU, ONNX Runtime runs all-MiniLM-L6-v2 several times faster than PyTorch eager, for single sentences
above all (eager PyTorch pays Python overhead per layer, holding the GIL that the event loop needs). The
graph comes from :mod:`models.runtime.export` (or is the folder's own ``model.onnx``, an int8 variant).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.devices import stream_count
from models.runtime.errors import ModelLoadError
from models.runtime.tokenization import ModelInputs


def onnx_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session for ``path`` with bertserve's threading settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads must sleep, not spin: the event loop and tokenizers share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelLoadError(f"{path}: cannot load ONNX model ({type(exc).__name__})") from exc


class OnnxBackend:
    """ONNX Runtime on CPU: float32, or int8 (a quantized variant, or quantized at load time).

    ``streams`` batches may run at once (``InferenceSession.run`` is thread-safe), each on
    ``threads // streams`` intra-op threads: with one thread a batch runs on its caller's thread alone.
    """

    def __init__(self, path: Path, threads: int, dtype: str = "float32", streams: int = 1) -> None:
        self.device = "cpu"
        self.dtype = dtype
        self.path = path
        self.streams = stream_count(threads, streams)
        self.session = onnx_session(path, max(1, threads // self.streams))
        self._inputs = [item.name for item in self.session.get_inputs()]

    def forward(self, batch: ModelInputs) -> np.ndarray:
        """Run one padded batch; returns float32 rows."""
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        (rows,) = self.session.run(None, {name: arrays[name] for name in self._inputs})
        return np.asarray(rows, dtype=np.float32)
