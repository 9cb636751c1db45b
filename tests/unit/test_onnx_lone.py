"""ONNX Runtime with two streams: a batch run alone gets every thread, other batches their stream's share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.onnx import OnnxBackend
from models.runtime.sample import SAMPLE_TEXTS
from models.runtime.speed import LONE_MARGIN, lone_min_tokens
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


def test_a_lone_batch_below_lone_min_tokens_stays_on_its_stream(tiny_embedder: Path, tmp_path: Path) -> None:
    backend = _backend(tiny_embedder, tmp_path, lone=True)
    assert backend.lone_min_tokens == 0  # until the server times it
    calls: list[str] = []
    backend.lone_session = _Recording(backend.lone_session, "lone", calls)
    backend.session = _Recording(backend.session, "stream", calls)
    batches = sorted(_batches(tiny_embedder), key=lambda batch: batch.input_ids.size)
    small, large = batches[0], batches[-1]
    assert small.input_ids.size < large.input_ids.size
    backend.lone_min_tokens = large.input_ids.size

    for batch in (small, large, small):
        backend.forward(batch, alone=True)
    backend.forward(large)  # not alone: its stream, whatever its size
    assert calls == ["stream", "lone", "stream", "stream"]


class _Clocked:
    """Stands in for an ONNX Runtime backend whose batch costs are known: each call moves ``clock`` on by
    ``cost(alone, padded tokens)`` seconds."""

    def __init__(self, cost: Callable[[bool, int], float]) -> None:
        self.cost = cost
        self.now = 0.0
        self.seen: set[tuple[bool, int]] = set()

    def clock(self) -> float:
        return self.now

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        tokens = int(batch.input_ids.size)
        self.now += self.cost(alone, tokens) * (1 if (alone, tokens) in self.seen else 3)  # first: slower
        self.seen.add((alone, tokens))
        return np.zeros((batch.input_ids.shape[0], 4), dtype=np.float32)


def _sample_tokens(folder: Path) -> list[int]:
    """Padded tokens of the sample batches :func:`lone_min_tokens` times (1, 2, 4, 8 sentences)."""
    tokenizer = TextTokenizer.from_folder(folder, describe_model(folder).max_input_tokens)
    return [
        int(tokenizer.collate(tokenizer.encode(list(SAMPLE_TEXTS[:size]), truncate=True)).input_ids.size)
        for size in (1, 2, 4, 8)
    ]


@pytest.mark.parametrize("crossing", [0, 1, 3, None])
def test_lone_min_tokens_is_where_every_thread_first_wins_by_the_margin(
    tiny_embedder: Path, crossing: int | None
) -> None:
    tokens = _sample_tokens(tiny_embedder)
    assert tokens == sorted(set(tokens))
    # Every thread takes a third of one thread's time from sample batch ``crossing`` on, three times it
    # before (never, with None).
    winning = set(tokens[crossing:]) if crossing is not None else set()
    fake = _Clocked(lambda alone, n: (1e-3 if alone else 3e-3) if n in winning else (3e-3 if alone else 1e-3))
    tokenizer = TextTokenizer.from_folder(tiny_embedder, describe_model(tiny_embedder).max_input_tokens)

    found = lone_min_tokens(fake, tokenizer, calls=10, clock=fake.clock)  # type: ignore[arg-type]

    assert found == (tokens[-1] + 1 if crossing is None else 0 if crossing == 0 else tokens[crossing])


def test_every_thread_must_win_by_the_margin(tiny_embedder: Path) -> None:
    tokens = _sample_tokens(tiny_embedder)
    tokenizer = TextTokenizer.from_folder(tiny_embedder, describe_model(tiny_embedder).max_input_tokens)
    just_faster = _Clocked(lambda alone, n: 1e-3 if alone else 1e-3 * (LONE_MARGIN - 0.05))
    assert lone_min_tokens(just_faster, tokenizer, calls=10, clock=just_faster.clock) == tokens[-1] + 1  # type: ignore[arg-type]
    enough = _Clocked(lambda alone, n: 1e-3 if alone else 1e-3 * (LONE_MARGIN + 0.05))
    assert lone_min_tokens(enough, tokenizer, calls=10, clock=enough.clock) == 0  # type: ignore[arg-type]
