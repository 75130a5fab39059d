"""Graceful shutdown: server.close() sends 1001 to every connection, then wait_closed()."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether

BOUND = 10.0


async def test_server_close_sends_1001_to_every_connection(serve_ws: Any) -> None:
    finished: list[int | None] = []

    async def handler(ws: tether.WebSocket) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            finished.append(ws.close_code)

    server = await serve_ws(handler)
    port = server.port
    async with asyncio.timeout(BOUND):
        clients = [await tether.connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
        for i, ws in enumerate(clients):
            await ws.send(f"hello {i}")
            assert await ws.recv() == f"hello {i}"
        assert len(server.connections) == 3
        server.close()
        for ws in clients:
            with pytest.raises(tether.ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.code == 1001
        await server.wait_closed()
        for ws in clients:
            await ws.wait_closed()
            assert ws.close_code == 1001
    # wait_closed() returned after every closing handshake and every handler.
    assert finished == [1001, 1001, 1001]
    assert server.connections == set()
    with pytest.raises(OSError):
        await tether.connect(f"ws://127.0.0.1:{port}/", open_timeout=BOUND)


async def test_server_async_with_closes_gracefully() -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.wait_closed()

    async with asyncio.timeout(BOUND):
        async with tether.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            ws = await tether.connect(f"ws://127.0.0.1:{server.port}/")
        # leaving the block closed the server and waited for the connection
        await ws.wait_closed()
        assert ws.close_code == 1001
