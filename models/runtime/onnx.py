"""ONNX Runtime backend (CPU): an exported graph run without the GIL.

On CPU, ONNX Runtime runs all-MiniLM-L6-v2 several times faster than PyTorch eager, for single sentences
above all (eager PyTorch pays Python overhead per layer, holding the GIL that the event loop needs). The
graph comes from :mod:`models.runtime.export` (or is the folder's own ``model.onnx``, an int8 variant).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.devices import stream_count
from models.runtime.errors import ModelLoadError
from models.runtime.tokenization import ModelInputs


def onnx_session(path: Path, threads: int, weights: dict[str, Any] | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path`` with bertserve's threading settings; ``weights``
    (:func:`shared_weights`) replace the graph's own initializers, so that sessions share one copy."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    for name, value in (weights or {}).items():
        options.add_initializer(name, value)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads must sleep, not spin: the event loop and tokenizers share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelLoadError(f"{path}: cannot load ONNX model ({type(exc).__name__})") from exc


def shared_weights(path: Path) -> dict[str, Any] | None:
    """The graph's initializers as ONNX Runtime values that several sessions can use; None when the
    ``onnx`` package (the ``torch`` and ``int8`` extras) is not installed: each session loads its own."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises its own untyped errors for bad files
        raise ModelLoadError(f"{path}: cannot load ONNX model ({type(exc).__name__})") from exc
    return {
        item.name: ort.OrtValue.ortvalue_from_numpy(numpy_helper.to_array(item)) for item in graph.initializer
    }


class OnnxBackend:
    """ONNX Runtime on CPU: float32, or int8 (a quantized variant, or quantized at load time).

    ``streams`` batches may run at once (``InferenceSession.run`` is thread-safe), each on
    ``threads // streams`` intra-op threads: with one thread a batch runs on its caller's thread alone.
    With ``lone_all_threads``, a batch run ``alone`` (the engine's call: nothing else to run, low load)
    gets every thread instead, from a second session that shares the first one's weights, so a lone
    request is not held to its stream's share of the cores; under load nothing changes. Only from
    ``lone_min_tokens`` padded tokens on: below it one thread can be faster (the server times it at
    start-up, :func:`models.runtime.speed.lone_min_tokens`).
    """

    def __init__(
        self,
        path: Path,
        threads: int,
        dtype: str = "float32",
        streams: int = 1,
        lone_all_threads: bool = False,
    ) -> None:
        self.device = "cpu"
        self.dtype = dtype
        self.path = path
        self.streams = stream_count(threads, streams)
        per_stream = max(1, threads // self.streams)
        lone = lone_all_threads and per_stream < threads
        # ONNX Runtime reads these arrays in place: they must live as long as the sessions.
        self._weights = shared_weights(path) if lone else None
        self.session = onnx_session(path, per_stream, self._weights)
        #: The all-thread session for lone batches (None when every batch runs on its stream's share).
        self.lone_session = onnx_session(path, threads, self._weights) if lone else None
        #: Threads a batch gets when no other batch is running (from ``lone_min_tokens`` on).
        self.lone_threads = threads if lone else per_stream
        #: Padded tokens (rows x tokens) from which a batch run alone gets every thread: a smaller one
        #: stays on its stream's share (on 2 cores a lone int8 sentence ran 10-15% faster on one thread
        #: than on two: likely the threads' hand-offs at every operator).
        self.lone_min_tokens = 0
        self._running = 0
        self._count = threading.Lock()
        #: ONNX Runtime's kernels do not depend on the shapes seen before: padding would only add work.
        self.token_multiple = 1
        self._inputs = [item.name for item in self.session.get_inputs()]

    @property
    def lone_all_threads(self) -> bool:
        """Whether a batch run alone gets every thread (there is an all-thread session)."""
        return self.lone_session is not None

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        """Run one padded batch; returns float32 rows. ``alone``: on every thread (with
        ``lone_all_threads``, from ``lone_min_tokens`` on), unless another batch started meanwhile."""
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        with self._count:
            alone = alone and self._running == 0 and batch.input_ids.size >= self.lone_min_tokens
            self._running += 1
        session = self.lone_session if alone and self.lone_session is not None else self.session
        try:
            (rows,) = session.run(None, {name: arrays[name] for name in self._inputs})
        finally:
            with self._count:
                self._running -= 1
        return np.asarray(rows, dtype=np.float32)
