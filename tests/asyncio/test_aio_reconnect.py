"""``async for ws in connect(...)``: a new connection after the server restarts, and the
end of iteration after a deliberate close()."""

from __future__ import annotations

import asyncio
from typing import Any

import tether

BOUND = 15.0


async def echo(ws: tether.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_reconnects_after_a_server_restart_and_stops_after_close(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    port = server.port
    uri = f"ws://127.0.0.1:{port}/"
    seen: list[tether.WebSocket] = []
    async with asyncio.timeout(BOUND):
        async for ws in tether.connect(
            uri, backoff=tether.Backoff(delay_initial=0.01, delay_max=0.05)
        ):
            seen.append(ws)
            await ws.send(f"round {len(seen)}")
            assert await ws.recv() == f"round {len(seen)}"
            if len(seen) == 1:
                server.close()
                await server.wait_closed()
                await ws.wait_closed()
                assert ws.close_code == 1001
                await asyncio.sleep(0.1)  # a few failed attempts while nothing listens
                server = await serve_ws(echo, port=port)
            else:
                await ws.close()
    assert len(seen) == 2
    assert seen[0] is not seen[1]
    assert seen[1].close_code == 1000


async def test_iteration_ends_after_close_on_the_first_connection(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    count = 0
    async with asyncio.timeout(BOUND):
        async for ws in tether.connect(
            f"ws://127.0.0.1:{server.port}/",
            backoff=tether.Backoff(delay_initial=0.01, delay_max=0.05),
        ):
            count += 1
            await ws.close()
    assert count == 1


async def test_reconnects_after_the_server_drops_the_connection(serve_ws: Any) -> None:
    async def dropper(ws: tether.WebSocket) -> None:
        await ws.recv()
        assert ws.transport is not None
        ws.transport.abort()  # no closing handshake: an abnormal closure

    server = await serve_ws(dropper)
    seen = 0
    async with asyncio.timeout(BOUND):
        async for ws in tether.connect(
            f"ws://127.0.0.1:{server.port}/",
            backoff=tether.Backoff(delay_initial=0.01, delay_max=0.05),
        ):
            seen += 1
            if seen == 3:
                await ws.close()
                continue
            await ws.send("drop me")
            await ws.wait_closed()
            assert ws.close_code == 1006
    assert seen == 3


def test_backoff_grows_and_is_capped() -> None:
    import random

    backoff = tether.Backoff(
        delay_initial=0.01, delay_max=0.05, factor=2.0, randomization_factor=0.0
    )
    assert [backoff.delay(n) for n in range(5)] == [0.01, 0.02, 0.04, 0.05, 0.05]
    jittered = tether.Backoff(delay_initial=1.0, delay_max=10.0, rng=random.Random(7))
    delays = [jittered.delay(0) for _ in range(50)]
    assert all(0.5 <= d <= 1.5 for d in delays)
    assert len(set(delays)) > 1


async def test_server_close_reconnects_and_user_close_ends_iteration(serve_ws: Any) -> None:
    # connect() documents: only a deliberate close() ends iteration; a close by the
    # server (here 1000, its handler returns) leads to a new connection.
    async def bye(ws: tether.WebSocket) -> None:
        await ws.send("bye")

    server = await serve_ws(bye)
    connections = 0
    async with asyncio.timeout(BOUND):
        async for ws in tether.connect(
            f"ws://127.0.0.1:{server.port}/",
            backoff=tether.Backoff(delay_initial=0.01, delay_max=0.05),
        ):
            connections += 1
            if connections == 2:
                await ws.close()
                continue
            assert [message async for message in ws] == ["bye"]
            assert ws.close_code == 1000
    assert connections == 2
