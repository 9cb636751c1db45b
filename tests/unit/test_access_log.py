"""The access log: JSON lines in JsonFormatter's shape, written in batches."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from service.logs import ACCESS_FLUSH_LINES, ACCESS_FLUSH_S, AccessLog, configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


def _json_logging() -> io.StringIO:
    """``configure_logging("info", "json")``, its handler writing to a string. Called in the test's
    body: pytest adds its own capturing handler to the root logger for each test phase, and
    configure_logging replaces it."""
    configure_logging("info", "json")
    out = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    return out


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
async def test_lines_wait_for_a_full_batch_or_the_timer() -> None:
    stream = _json_logging()
    log = AccessLog()
    log.write({"request_id": "a", "status": 200})
    log.write({"request_id": "b", "status": 404})
    assert stream.getvalue() == ""
    await asyncio.sleep(ACCESS_FLUSH_S * 3)
    first, second = _lines(stream)
    assert first["logger"] == "bertserve.access"
    assert first["message"] == "request"
    assert (first["level"], first["request_id"], second["status"]) == ("info", "a", 404)
    assert str(first["ts"]).endswith("Z")
    assert len(str(first["ts"])) == len("2026-11-30T05:59:36.980Z")
    for index in range(ACCESS_FLUSH_LINES):
        log.write({"request_id": str(index)})
    assert len(_lines(stream)) == 2 + ACCESS_FLUSH_LINES  # a full batch is written at once


@pytest.mark.usefixtures("restore_logging")
async def test_a_new_handler_gets_new_lines_after_the_old_ones_are_written() -> None:
    stream = _json_logging()
    log = AccessLog()
    log.write({"request_id": "old"})
    assert _lines(stream) == []
    newer = _json_logging()  # reconfigured: the waiting line goes to the stream it was for
    log.write({"request_id": "new"})
    assert [line["request_id"] for line in _lines(stream)] == ["old"]
    log.flush()  # as at shutdown
    assert [line["request_id"] for line in _lines(newer)] == ["new"]
    assert [line["request_id"] for line in _lines(stream)] == ["old"]


@pytest.mark.usefixtures("restore_logging")
async def test_other_logging_setups_and_levels_go_through_logging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = _json_logging()
    log = AccessLog()
    logging.getLogger().setLevel("WARNING")
    log.write({"request_id": "quiet"})
    log.flush()
    assert stream.getvalue() == ""
    configure_logging("info", "text")
    log.write({"request_id": "text"})  # the text format prints the message: written at once
    assert capsys.readouterr().err.endswith(" INFO bertserve.access: request\n")
    assert stream.getvalue() == ""
