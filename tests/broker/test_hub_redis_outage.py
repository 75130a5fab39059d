"""Two hubs on a Redis of the test's own: a room broadcast survives a Redis restart and a
killed subscription. Every emit that returned without an error is delivered exactly once,
in order."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import FAST, OwnRedis
from tether.broker import RedisBroker
from tether.exceptions import BufferFull
from tether.realtime import Client, Hub, Socket
from tether.testing.broker import WAIT, wait_until, wait_until_async

pytestmark = pytest.mark.timeout(120)


async def test_room_broadcasts_survive_a_redis_restart(own_redis: OwnRedis) -> None:
    prefix = f"hub{uuid.uuid4().hex[:8]}"
    hubs = [Hub(broker=RedisBroker(own_redis.url, prefix=prefix, **FAST)) for _ in range(2)]

    @hubs[1].on("join")
    async def join(socket: Socket, room: str) -> str:
        await socket.join(room)
        return "ok"

    servers = [await hub.serve("127.0.0.1", 0) for hub in hubs]
    got: list[int] = []
    client = Client(reconnection=False)
    client.on("n", got.append)
    a, b = hubs[0].broker, hubs[1].broker
    try:
        ids = sorted([a.node_id, b.node_id])
        await wait_until_async(a.live_nodes, ids)
        await wait_until_async(b.live_nodes, ids)
        await client.connect(f"http://127.0.0.1:{servers[1].port}", transports=["websocket"])
        assert await client.emit_with_ack("join", "r", timeout=WAIT) == "ok"
        accepted: list[int] = []

        async def emit(start: int, stop: int) -> None:
            for i in range(start, stop):
                try:
                    await hubs[0].to("r").emit("n", i)
                except BufferFull:
                    continue
                accepted.append(i)
                await asyncio.sleep(0)

        await emit(0, 100)
        await asyncio.to_thread(own_redis.stop)
        await emit(100, 200)  # Redis down: kept in the bounded buffer
        await wait_until(lambda: a.state == b.state == "reconnecting", "both reconnecting")
        restart = asyncio.ensure_future(asyncio.to_thread(own_redis.start))
        await emit(200, 300)
        await restart
        await emit(300, 400)
        await wait_until(lambda: len(got) >= len(accepted), "every accepted emit delivered")
        await wait_until(lambda: a.state == b.state == "connected", "both connected again")
        assert got == accepted and len(accepted) == 400  # exactly once, in order
        assert b.stats.resubscribed >= 1

        # A subscription killed from the Redis side is noticed and restored.
        await asyncio.to_thread(own_redis.cli, "CLIENT", "KILL", "TYPE", "pubsub")
        await wait_until(lambda: b.stats.reconnects >= 2, "the subscriber reconnected")
        await wait_until(lambda: a.state == b.state == "connected", "both connected")
        await emit(400, 410)
        await wait_until(lambda: len(got) >= len(accepted), "emits after the kill delivered")
        assert got == accepted
    finally:
        await client.disconnect()
        for hub in hubs:
            await hub.close()
            await hub.broker.close()
