"""Keepalive pings: a silent peer is closed with 1011; pings off means no pings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tether.protocol import CloseReceived, Opcode, Ping, Pong

BOUND = 10.0
INTERVAL = 0.05
QUIET = 0.3  # several intervals: long enough to see pings if any were sent


async def test_server_closes_1011_when_pings_are_not_answered(serve_ws: Any, raw_ws: Any) -> None:
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        try:
            await ws.recv()
        except tether.ConnectionClosed as exc:
            outcome.set_result(exc)

    server = await serve_ws(handler, ping_interval=INTERVAL, ping_timeout=INTERVAL)
    peer = await raw_ws(server.port)
    events = await peer.events_until_eof()  # the raw peer never sends a pong
    pings = [e for e in events if isinstance(e, Ping)]
    closes = [e for e in events if isinstance(e, CloseReceived)]
    assert pings, events
    assert len(closes) == 1
    assert closes[0].code == 1011
    async with asyncio.timeout(BOUND):
        exc = await outcome
    assert isinstance(exc, tether.ConnectionClosedError)
    assert exc.sent_code == 1011


async def test_answered_pings_keep_the_connection_open(serve_ws: Any, raw_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve_ws(handler, ping_interval=INTERVAL, ping_timeout=INTERVAL)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(f"ws://127.0.0.1:{server.port}/", ping_interval=INTERVAL)
        await asyncio.sleep(QUIET)
        await ws.send("still here")
        assert await ws.recv() == "still here"
        assert ws.ready_state is tether.State.OPEN
        await ws.close()
        assert ws.close_code == 1000


async def test_pings_without_timeout_do_not_close(serve_ws: Any, raw_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.wait_closed(), ping_interval=INTERVAL, ping_timeout=None)
    peer = await raw_ws(server.port)
    pings = 0
    async with asyncio.timeout(BOUND):
        while pings < 4:
            events = await peer.next_events()
            assert events, "closed although ping_timeout is None"
            assert all(isinstance(e, Ping) for e in events), events
            pings += len(events)


async def test_no_pings_when_ping_interval_is_none(serve_ws: Any, raw_ws: Any) -> None:
    server = await serve_ws(lambda ws: ws.wait_closed(), ping_interval=None, ping_timeout=INTERVAL)
    peer = await raw_ws(server.port)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(QUIET):
            await peer.next_events()
    assert peer.parser.events_received() == []
    # Still open and working: a ping from the peer is answered.
    await peer.send_frame(Opcode.PING, b"hi")
    async with asyncio.timeout(BOUND):
        assert await peer.next_events() == [Pong(b"hi")]


async def test_client_closes_1011_when_the_server_never_answers_pings(raw_server: Any) -> None:
    seen = bytearray()
    eof = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            seen.extend(data)
        eof.set()

    port = await raw_server(silent)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(
            f"ws://127.0.0.1:{port}/",
            ping_interval=INTERVAL,
            ping_timeout=INTERVAL,
            close_timeout=INTERVAL,
        )
        with pytest.raises(tether.ConnectionClosedError) as info:
            await ws.recv()
        await ws.wait_closed()
        await eof.wait()
    assert info.value.sent_code == 1011
    # What the client wrote: at least one masked ping, then a masked close with 1011.
    opcodes = []
    pos = 0
    while pos + 6 <= len(seen):
        length = seen[pos + 1] & 0x7F
        opcodes.append(seen[pos] & 0x0F)
        if seen[pos] & 0x0F == Opcode.CLOSE:
            mask = seen[pos + 2 : pos + 6]
            code = bytes(b ^ mask[i % 4] for i, b in enumerate(seen[pos + 6 : pos + 8]))
            assert int.from_bytes(code, "big") == 1011
        pos += 6 + length
    assert Opcode.PING in opcodes
    assert opcodes[-1] == Opcode.CLOSE
