"""One socket write per response: writes made in one loop turn leave together."""

from __future__ import annotations

import asyncio
import socket

import pytest

from service.http.coalesce import CoalescingTransport

pytestmark = pytest.mark.unit


class _Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport


class _CountingTransport:
    """A real socket transport whose ``write`` calls are counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.inner = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def _connected() -> tuple[_CountingTransport, socket.socket]:
    """A real socket pair: our end as an asyncio transport, the peer as a plain socket."""
    ours, peer = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(_Recorder, ours)
    peer.setblocking(False)
    return _CountingTransport(transport), peer


async def _received(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await loop.sock_recv(peer, size - len(data))
    return data


async def test_writes_of_one_turn_leave_in_one_write() -> None:
    counting, peer = await _connected()
    transport = CoalescingTransport(counting, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    transport.write(memoryview(b"hello"))
    transport.write(b"")
    assert counting.writes == []  # nothing leaves before the turn ends
    assert transport.get_write_buffer_size() == 43
    await asyncio.sleep(0)
    assert counting.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
    assert await _received(peer, 43) == counting.writes[0]
    transport.write(b"next")  # a later turn: a write of its own
    await asyncio.sleep(0)
    assert counting.writes[1:] == [b"next"]
    transport.close()
    peer.close()


async def test_close_sends_what_waits_first_and_nothing_goes_to_a_closed_transport() -> None:
    counting, peer = await _connected()
    transport = CoalescingTransport(counting, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last words")
    transport.close()
    assert counting.writes == [b"last words"]
    assert transport.is_closing()  # passed on to the real transport
    assert await _received(peer, 10) == b"last words"
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert counting.writes == [b"last words"]
    peer.close()
