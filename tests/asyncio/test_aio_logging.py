"""Log records of a connection carry its id."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import tether
from tether.protocol import CloseReceived

BOUND = 10.0


async def test_log_records_carry_the_connection_id(
    serve_ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    ids: list[str] = []

    async def handler(ws: tether.WebSocket) -> None:
        ids.append(ws.id)
        async for message in ws:
            await ws.send(message)

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(f"ws://127.0.0.1:{server.port}/")
        await ws.send("x")
        await ws.recv()
        await ws.close()
        while server.connections:
            await asyncio.sleep(0.01)
    server_id, client_id = ids[0], ws.id
    assert server_id != client_id
    for conn_id in (server_id, client_id):
        records = [r for r in caplog.records if getattr(r, "conn_id", None) == conn_id]
        assert records, f"no record for connection {conn_id}"
        assert all(f"[{conn_id}]" in r.getMessage() for r in records)


async def test_failure_is_logged_with_the_connection_id(
    serve_ws: Any, raw_ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether")
    ids: list[str] = []

    async def handler(ws: tether.WebSocket) -> None:
        ids.append(ws.id)
        await ws.wait_closed()

    server = await serve_ws(handler)
    peer = await raw_ws(server.port)
    await peer.send(b"\x83\x80\x00\x00\x00\x00")  # reserved opcode 0x3
    events = await peer.events_until_eof()
    assert [e.code for e in events if isinstance(e, CloseReceived)] == [1002]
    failures = [
        r
        for r in caplog.records
        if getattr(r, "conn_id", None) == ids[0] and r.levelno >= logging.INFO
    ]
    assert failures, [r.getMessage() for r in caplog.records]
