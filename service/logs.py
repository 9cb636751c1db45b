"""Structured logging: one JSON object per line, with a request id on request lines.

Request lines carry route, model, status, items, tokens and times; never texts, embeddings or secrets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

ACCESS_LOGGER = "bertserve.access"
#: Access lines are written when this many are waiting, or ACCESS_FLUSH_S after the first of them.
ACCESS_FLUSH_LINES = 64
ACCESS_FLUSH_S = 0.1


class _Timestamps:
    """ISO 8601 UTC timestamps with milliseconds, the seconds' text formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a benign race between threads: both compute the same text
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line; fields passed as ``extra={"fields": {...}}`` are merged in.

    orjson: compact, ~20x faster than ``json.dumps``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._timestamps = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra: dict[str, Any] = dict(fields) if isinstance(fields, dict) else {}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        stamp = self._timestamps.format(record.created)
        return json_line(stamp, record.levelname.lower(), record.name, record.getMessage(), extra).decode()


def json_line(stamp: str, level: str, logger: str, message: str, fields: dict[str, Any]) -> bytes:
    """One log line in bertserve's JSON shape (the one definition, for records and access lines)."""
    line = {"ts": stamp, "level": level, "logger": logger, "message": message, **fields}
    return orjson.dumps(line, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Route every logger (uvicorn's included) through one handler in ``fmt`` (json or text)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Every request logs a line: skip what no bertserve format prints (the caller's frame, thread and
    # process names), as the logging HOWTO's "Optimization" section describes.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """The access log: one line per request, with the request's fields.

    Through ``logging``, a line cost ~40 us of the event loop's CPU (a record, the handler's lock, a
    write and a flush per line: a third of a cache hit; benchmarks/RESULTS.md). With the JSON format of
    :func:`configure_logging`, lines are therefore built here, in the same shape as
    :class:`JsonFormatter`'s, and written to the handler's stream in batches: once
    ``ACCESS_FLUSH_LINES`` wait, ``ACCESS_FLUSH_S`` after the first, and at shutdown (:meth:`flush`).
    Any other logging setup (text format, another handler) gets each line through ``logging``.
    Called on the event loop only.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._timestamps = _Timestamps()
        self._waiting: list[bytes] = []
        self._handler: logging.StreamHandler[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def write(self, fields: dict[str, Any]) -> None:
        """Log one request's line (if the access logger is enabled for INFO)."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        handler = _json_stream_handler()
        if handler is None:
            self._logger.info("request", extra={"fields": fields})
            return
        if handler is not self._handler:  # logging was configured again: the old stream first
            self.flush()
            self._handler = handler
        stamp = self._timestamps.format(time.time())
        self._waiting.append(json_line(stamp, "info", ACCESS_LOGGER, "request", fields))
        if len(self._waiting) >= ACCESS_FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(ACCESS_FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write the waiting lines now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting or self._handler is None:
            return
        text = b"\n".join(self._waiting).decode() + "\n"
        self._waiting.clear()
        handler = self._handler
        handler.acquire()  # whole lines: other threads log through the same handler
        try:
            handler.stream.write(text)
            handler.flush()
        finally:
            handler.release()


def _json_stream_handler() -> logging.StreamHandler[Any] | None:
    """The root logger's handler, if it is the one :func:`configure_logging` sets up for JSON."""
    handlers = logging.getLogger().handlers
    if len(handlers) == 1:
        handler = handlers[0]
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, JsonFormatter):
            return handler
    return None
