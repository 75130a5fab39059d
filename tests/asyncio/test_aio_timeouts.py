"""open_timeout and close_timeout, scaled small, on both sides."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tether.protocol import CloseReceived, Opcode

BOUND = 10.0
SHORT = 0.1


async def test_server_drops_a_client_that_sends_half_a_request(serve_ws: Any, raw_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.wait_closed(), open_timeout=SHORT)
    peer = await raw_ws(server.port, handshake=False)
    await peer.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    answer = b""
    async with asyncio.timeout(BOUND):
        while chunk := await peer.recv():
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert peer.eof


async def test_server_drops_a_silent_client(serve_ws: Any, raw_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.wait_closed(), open_timeout=SHORT)
    peer = await raw_ws(server.port, handshake=False)
    async with asyncio.timeout(BOUND):
        while await peer.recv():
            pass
    assert peer.eof


async def test_client_open_timeout_when_the_server_never_answers(raw_server: Any) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, answers nothing

    port = await raw_server(mute, upgrade=False)
    async with asyncio.timeout(BOUND):
        with pytest.raises(tether.OpenTimeout) as info:
            await tether.connect(f"ws://127.0.0.1:{port}/", open_timeout=SHORT)
    assert isinstance(info.value, TimeoutError)


async def test_server_aborts_when_the_client_never_answers_close(
    serve_ws: Any, raw_ws: Any
) -> None:
    result: asyncio.Future[tether.WebSocket] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        await ws.recv()
        await ws.close(1000, "bye")
        result.set_result(ws)

    server = await serve_ws(handler, close_timeout=SHORT)
    peer = await raw_ws(server.port)
    await peer.send_frame(Opcode.TEXT, b"please close")
    # The peer reads the close frame but never answers it, and never closes TCP.
    async with asyncio.timeout(BOUND):
        ws = await result
        events = await peer.events_until_eof()
    assert ws.closed
    assert ws.ready_state is tether.State.CLOSED
    assert ws.close_code == 1006  # no close frame came back
    assert events == [CloseReceived(1000, "bye")]


async def test_client_aborts_when_the_server_never_answers_close(raw_server: Any) -> None:
    got_close = asyncio.Event()

    async def stubborn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            if data[0] & 0x0F == Opcode.CLOSE:
                got_close.set()
        await asyncio.Event().wait()  # keep TCP open: never close, never answer

    port = await raw_server(stubborn)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(f"ws://127.0.0.1:{port}/", close_timeout=SHORT)
        await ws.close()
        await got_close.wait()
    assert ws.closed
    assert ws.close_code == 1006
    with pytest.raises(tether.ConnectionClosedError):
        await ws.recv()


async def test_client_closes_tcp_if_the_server_answers_close_but_keeps_tcp_open(
    raw_server: Any,
) -> None:
    async def half_polite(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            if data[0] & 0x0F == Opcode.CLOSE:
                writer.write(b"\x88\x02\x03\xe8")  # close 1000, but TCP stays open
        await asyncio.Event().wait()

    port = await raw_server(half_polite)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(f"ws://127.0.0.1:{port}/", close_timeout=SHORT)
        await ws.close()
    assert ws.closed
    assert ws.close_code == 1000
    with pytest.raises(tether.ConnectionClosedOK):
        await ws.recv()
