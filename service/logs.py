"""Structured logging: one JSON object per line, with a request id on request lines.

Request lines carry route, model, status, items, tokens and times; never texts, embeddings or secrets.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

ACCESS_LOGGER = "bertserve.access"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line; fields passed as ``extra={"fields": {...}}`` are merged in.

    Every request writes a line, so this is on the hot path: orjson (compact, ~20x faster than
    ``json.dumps``) and the timestamp's seconds formatted once per second.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # a benign race between threads: both compute the same text
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        line: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


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
