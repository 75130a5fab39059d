"""What a misbehaving or abrupt peer does to a connection over real sockets: the close code
on the wire, the cause kept on the exception, and pending operations released."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tether.exceptions import ProtocolError
from tether.protocol import CloseReceived, Opcode, TextMessage

BOUND = 10.0


async def test_invalid_utf8_from_the_client_fails_1007_with_the_cause_kept(
    serve_ws: Any, raw_ws: Any
) -> None:
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        try:
            await ws.recv()
        except tether.ConnectionClosed as exc:
            outcome.set_result(exc)

    server = await serve_ws(handler)
    peer = await raw_ws(server.port)
    await peer.send_frame(Opcode.TEXT, b"bad \xff utf-8")
    events = await peer.events_until_eof()
    assert events == [CloseReceived(1007, "")]
    async with asyncio.timeout(BOUND):
        exc = await outcome
    assert isinstance(exc, tether.ConnectionClosedError)
    assert exc.sent_code == 1007
    assert isinstance(exc.__cause__, ProtocolError)
    assert exc.__cause__.code == 1007


async def test_unmasked_frame_from_the_client_fails_1002(serve_ws: Any, raw_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.wait_closed())
    peer = await raw_ws(server.port)
    await peer.send(b"\x81\x02hi")
    assert await peer.events_until_eof() == [CloseReceived(1002, "")]


async def test_frames_sent_with_the_request_are_not_lost(serve_ws: Any, raw_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve_ws(handler, compression=None)
    peer = await raw_ws(server.port, handshake=False)
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    frame = tether.protocol.serialize_frame(Opcode.TEXT, b"early", mask=b"abcd")
    await peer.send(request + frame)  # one write: the frame rides with the request
    head = b""
    async with asyncio.timeout(BOUND):
        while b"\r\n\r\n" not in head:
            chunk = await peer.recv(1)
            assert chunk
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await peer.next_events() == [TextMessage("early")]


async def test_request_split_in_tiny_pieces_is_upgraded(serve_ws: Any, raw_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.send("welcome"))
    peer = await raw_ws(server.port, handshake=False)
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    for i in range(0, len(request), 7):
        await peer.send(request[i : i + 7])
        await asyncio.sleep(0)
    data = b""
    async with asyncio.timeout(BOUND):
        while b"welcome" not in data:
            chunk = await peer.recv()
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 101 ")


async def test_server_with_max_size_none_receives_compressed_messages(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve_ws(handler, max_size=None)
    async with asyncio.timeout(BOUND):
        async with tether.connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as ws:
            assert ws.extensions is not None
            message = "compress me " * 100
            await ws.send(message)
            assert await ws.recv() == message


async def test_a_second_concurrent_recv_is_a_local_error(serve_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.wait_closed())
    async with asyncio.timeout(BOUND):
        async with tether.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(tether.InvalidState):
                await ws.recv()
            first.cancel()


async def test_pending_ping_fails_when_the_connection_drops(raw_server: Any) -> None:
    async def drop_after_ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(4096)
        assert data[0] & 0x0F == Opcode.PING
        writer.transport.abort()

    port = await raw_server(drop_after_ping)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(f"ws://127.0.0.1:{port}/")
        with pytest.raises(tether.ConnectionClosedError) as info:
            await ws.ping()
        assert info.value.code == 1006
        await ws.wait_closed()
        assert ws.close_code == 1006


async def _send_then_read_to_the_end(peer: Any, data: bytes) -> tuple[list[Any], list[str]]:
    """Write ``data`` (as much as the server takes), then read to the end: the events
    parsed and the errors seen on the way (a reset shows up as ConnectionResetError)."""
    errors: list[str] = []
    try:
        await peer.send(data)
    except ConnectionError as exc:
        errors.append(f"send: {exc!r}")
    events: list[Any] = []
    async with asyncio.timeout(BOUND):
        while True:
            try:
                chunk = await peer.loop.sock_recv(peer.sock, 65536)
            except ConnectionError as exc:
                errors.append(f"recv: {exc!r}")
                break
            if not chunk:
                break
            peer.parser.receive_data(chunk)
            events.extend(peer.parser.events_received())
            peer.parser.data_to_send()
    return events, errors


@pytest.mark.parametrize("size", [256 * 1024, 8 * 1024 * 1024])
async def test_oversized_message_gets_its_1009_and_no_reset(
    serve_ws: Any, raw_ws: Any, size: int
) -> None:
    # The server fails the connection on the frame header while the rest of the message
    # is still on its way. Closing the socket then resets the connection (the peer's
    # send fails, its reads end in ECONNRESET, and what it had not read yet is lost).
    # The server lingers instead: it half-closes, discards what still arrives, and the
    # peer reads the close frame and then a clean EOF.
    server = await serve_ws(lambda ws: ws.wait_closed(), max_size=64 * 1024, compression=None)
    peer = await raw_ws(server.port)
    frame = tether.protocol.serialize_frame(Opcode.BINARY, b"x" * size, mask=b"abcd")
    events, errors = await _send_then_read_to_the_end(peer, frame)
    assert events == [CloseReceived(1009, "")]
    assert errors == []


async def test_bad_frame_followed_by_more_data_keeps_the_close_frame(
    serve_ws: Any, raw_ws: Any
) -> None:
    # A protocol error, and the peer goes on writing before it reads: the close frame
    # must still reach it, and the connection must end with a FIN, not a reset.
    server = await serve_ws(lambda ws: ws.wait_closed(), compression=None)
    peer = await raw_ws(server.port)
    bad = b"\x81\x02hi"  # unmasked: 1002
    more = tether.protocol.serialize_frame(Opcode.TEXT, b"y" * 65536, mask=b"abcd") * 64
    events, errors = await _send_then_read_to_the_end(peer, bad + more)
    assert events == [CloseReceived(1002, "")]
    assert errors == []


async def test_websockets_client_sending_an_oversized_message_reads_the_1009(
    serve_ws: Any,
) -> None:
    # The report's case with a real client: 17 MiB against a 16 MiB limit. The server
    # discards the rest of the message, so the client's send completes (a reset would
    # break it off) and the client reads the 1009.
    websockets = pytest.importorskip("websockets")
    limit = 16 * 1024 * 1024
    server = await serve_ws(lambda ws: ws.wait_closed(), max_size=limit, compression=None)
    async with asyncio.timeout(BOUND):
        ws = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/", max_size=None, compression=None
        )
        await ws.send(b"x" * (limit + 1024 * 1024))
        await ws.wait_closed()
    assert ws.close_code == 1009
