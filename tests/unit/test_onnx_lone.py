"""ONNX Runtime with two streams: a batch run alone gets every thread, other batches their stream's share."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.onnx import OnnxBackend
from models.runtime.tokenization import ModelInputs, TextTokenizer

pytestmark = pytest.mark.unit


class _Recording:
    """A real session that records its calls and can hold one until released."""

    def __init__(self, session: Any, name: str, calls: list[str]) -> None:
        self.session = session
        self.name = name
        self.calls = calls
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def run(self, *args: Any) -> Any:
        self.calls.append(self.name)
        self.entered.set()
        assert self.release.wait(10)
        return self.session.run(*args)


def _backend(folder: Path, tmp_path: Path, lone: bool, streams: int = 2) -> OnnxBackend:
    description = describe_model(folder)
    backend, runtime = create_backend(
        description, "onnx", "cpu", "float32", "none", tmp_path, 2, streams, lone_all_threads=lone
    )
    assert runtime == "onnx"
    assert isinstance(backend, OnnxBackend)
    return backend


def _batches(folder: Path) -> list[ModelInputs]:
    description = describe_model(folder)
    tokenizer = TextTokenizer.from_folder(folder, description.max_input_tokens)
    texts = [[f"text {i} " + "more " * (i % 7)] * (i % 5 + 1) for i in range(12)]
    return [tokenizer.collate(tokenizer.encode(group, truncate=True)) for group in texts]


def test_a_batch_run_alone_gets_every_thread_unless_another_is_running(
    tiny_embedder: Path, tmp_path: Path
) -> None:
    backend = _backend(tiny_embedder, tmp_path, lone=True)
    assert (backend.streams, backend.lone_threads) == (2, 2)
    assert backend.lone_session is not None
    calls: list[str] = []
    lone = backend.lone_session = _Recording(backend.lone_session, "lone", calls)
    backend.session = _Recording(backend.session, "stream", calls)
    batch = _batches(tiny_embedder)[3]
    expected = _backend(tiny_embedder, tmp_path, lone=False, streams=1).forward(batch)

    np.testing.assert_allclose(backend.forward(batch, alone=True), expected, atol=1e-5)
    np.testing.assert_allclose(backend.forward(batch), expected, atol=1e-5)  # not alone: its stream
    lone.release.clear()
    lone.entered.clear()
    first = threading.Thread(target=backend.forward, args=(batch, True))
    first.start()
    assert lone.entered.wait(10)  # the first batch is inside the all-thread session...
    # ...so a batch that starts meanwhile runs on its stream, even if the batcher thought it alone.
    np.testing.assert_allclose(backend.forward(batch, alone=True), expected, atol=1e-5)
    lone.release.set()
    first.join(10)
    np.testing.assert_allclose(backend.forward(batch, alone=True), expected, atol=1e-5)
    assert calls == ["lone", "stream", "lone", "stream", "lone"]


def test_sessions_sharing_the_weights_give_the_rows_of_a_plain_session(
    tiny_embedder: Path, tmp_path: Path
) -> None:
    shared = _backend(tiny_embedder, tmp_path, lone=True)
    plain = _backend(tiny_embedder, tmp_path, lone=False, streams=1)
    assert shared.lone_session is not None
    for batch in _batches(tiny_embedder):
        np.testing.assert_allclose(shared.forward(batch, alone=True), plain.forward(batch), atol=1e-5)
        inputs = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        feed = {item.name: inputs[item.name] for item in shared.session.get_inputs()}
        (stream_rows,) = shared.session.run(None, feed)
        np.testing.assert_allclose(stream_rows, plain.forward(batch), atol=1e-5)


@pytest.mark.parametrize(("lone", "streams", "threads"), [(False, 2, 1), (True, 1, 2)])
def test_no_second_session_when_off_or_with_one_stream(
    tiny_embedder: Path, tmp_path: Path, lone: bool, streams: int, threads: int
) -> None:
    backend = _backend(tiny_embedder, tmp_path, lone=lone, streams=streams)
    assert backend.lone_session is None
    assert backend.lone_threads == threads
