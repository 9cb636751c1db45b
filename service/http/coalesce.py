"""One socket write per response: uvicorn's protocol with its writes coalesced per loop turn.

uvicorn writes a response's status line and headers, then its body, each with its own
``transport.write``: two send() calls, and on loopback or a fast network two segments, each one
processed by the kernel on the spot. The answer of a cache hit then pays the socket twice (the header
write was the largest single item of a cache hit's CPU; benchmarks/RESULTS.md). Here the protocol's
transport collects what is written during one turn of the event loop and sends it in one write at the
end of that turn, so a response whose parts are sent back to back leaves in one piece. Nothing is held
longer than the current turn, and close / write_eof send what is waiting first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport: writes made in one loop turn leave in one ``write``; all else passes on."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._waiting: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the write at the end of this loop turn."""
        if not data:
            return
        if not self._waiting:
            self._loop.call_soon(self.flush)
        self._waiting.append(bytes(data))

    def flush(self) -> None:
        """Write what waits now (one call)."""
        if not self._waiting:
            return
        data = self._waiting[0] if len(self._waiting) == 1 else b"".join(self._waiting)
        self._waiting.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Send what waits, then close."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Send what waits, then half-close."""
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet sent, waiting here included (flow control)."""
        return self._transport.get_write_buffer_size() + sum(len(part) for part in self._waiting)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescingTransport` (``uvicorn.Config(http=...)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
