"""Hubs on a real Redis Cluster (three primaries, a replica each) while a primary fails
over with ``CLUSTER FAILOVER`` in the middle of the traffic, or a room's slot moves to
another primary.

With connection-state recovery on, broadcasts are durable: every broadcast whose emit
returned reaches every member of its room exactly once and in order, across the
failover of the shard that holds the namespace's log and channel (the nodes notice the
``sunsubscribe``, read the slot map again, subscribe again and read back from the log
what was published while they were not listening). Without recovery, broadcasts flow
again once the nodes have resubscribed, and cluster requests work.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tether.broker.redis_cluster import RedisClusterBroker
from tether.realtime import Client, Hub, Recovery, Socket
from tether.testing.broker import wait_until_async

from .cluster_helpers import FAST, WAIT, Inbox

pytestmark = pytest.mark.timeout(120)


def make_hub(url: str, prefix: str, recovery: Recovery | None) -> Hub:
    hub = Hub(broker=RedisClusterBroker(url, prefix=prefix, **FAST), recovery=recovery)

    @hub.on("join")
    async def join(socket: Socket, room: str) -> str:
        await socket.join(room)
        return "ok"

    return hub


async def start(hubs: list[Hub]) -> list[Any]:
    servers = [await hub.serve("127.0.0.1", 0) for hub in hubs]
    ids = {hub.broker.node_id for hub in hubs}
    for hub in hubs:

        async def sees_all(broker: Any = hub.broker) -> bool:
            return ids <= set(await broker.live_nodes())

        await wait_until_async(sees_all, True)
    return servers


async def client_in(port: int, room: str) -> tuple[Client, Inbox]:
    client = Client(reconnection=False)
    inbox = Inbox(client)
    await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    assert await client.emit_with_ack("join", room, timeout=WAIT) == "ok"
    return client, inbox


async def flowing_again(hub: Hub, room: str, inbox: Inbox) -> None:
    """A plain broadcast is at most once while the nodes resubscribe: send probes until
    one arrives (bounded), then one more broadcast must arrive."""
    async with asyncio.timeout(WAIT):
        n = 0
        while not inbox.named("probe"):
            await hub.to(room).emit("probe", n)
            n += 1
            await asyncio.sleep(0.05)
    await hub.to(room).emit("after")
    await inbox.wait_for("after")


async def close(hubs: list[Hub], clients: list[Client]) -> None:
    for client in clients:
        await client.disconnect()
    for hub in hubs:
        await hub.close()
    for hub in hubs:
        await hub.broker.close()


async def test_durable_broadcasts_survive_a_failover(redis_cluster: Any) -> None:
    prefix = f"tfo{uuid.uuid4().hex[:8]}"
    recovery = Recovery(max_disconnection_duration=30)
    hubs = [make_hub(redis_cluster.url, prefix, recovery) for _ in range(3)]
    clients: list[Client] = []
    try:
        servers = await start(hubs)
        inboxes = []
        for server in servers[1:]:
            client, inbox = await client_in(server.port, "r")
            clients.append(client)
            inboxes.append(inbox)
        emitter = hubs[0]
        total = 300

        async def traffic() -> None:
            for n in range(total):
                await emitter.to("r").emit("n", n)  # returned: the cluster has it
                await asyncio.sleep(0.002)

        sending = asyncio.ensure_future(traffic())
        await asyncio.sleep(0.15)
        # The shard of the namespace's log and channel hands over to its replica.
        owner = redis_cluster.owner_of(f"{prefix}#/#")
        new_owner = await asyncio.to_thread(redis_cluster.failover, owner)
        assert new_owner != owner
        await asyncio.wait_for(sending, WAIT * 2)
        for inbox in inboxes:
            try:
                await inbox.wait_for("n", total, timeout=WAIT * 2)
            except TimeoutError:
                got = {args[0] for args in inbox.named("n")}
                missing = sorted(set(range(total)) - got)
                stats = [hub.broker.stats for hub in hubs]
                raise AssertionError(f"{len(missing)} missed: {missing[:20]}; {stats}") from None
        await emitter.to("r").emit("marker")
        for inbox in inboxes:
            await inbox.wait_for("marker")
            # Each argument list is (n, offset): every n once, in order.
            assert [args[0] for args in inbox.named("n")] == list(range(total))
        resubscribed = [hub.broker.stats.reconnects for hub in hubs]
        assert any(resubscribed), resubscribed  # the nodes did see the failover
        caught_up = sum(hub.broker.stats.caught_up for hub in hubs)
        print(f"\nreconnects {resubscribed}, read back from the log: {caught_up}")
    finally:
        await close(hubs, clients)


async def test_plain_broadcasts_and_requests_after_a_failover(redis_cluster: Any) -> None:
    prefix = f"tfp{uuid.uuid4().hex[:8]}"
    hubs = [make_hub(redis_cluster.url, prefix, None) for _ in range(2)]
    clients: list[Client] = []
    try:
        servers = await start(hubs)
        client, inbox = await client_in(servers[1].port, "blue")
        clients.append(client)
        await hubs[0].to("blue").emit("before")
        await inbox.wait_for("before")
        # The shard of the room's channel fails over.
        owner = redis_cluster.owner_of(f"{prefix}#/#blue#")
        await asyncio.to_thread(redis_cluster.failover, owner)

        await flowing_again(hubs[0], "blue", inbox)
        sockets = await hubs[0].timeout(WAIT).to("blue").fetch_sockets()
        assert [s.sid for s in sockets] == [client.socket("/").sid]
        # Both nodes become whole again. A node can still be "degraded" for a moment
        # after broadcasts flow (flushing what it buffered, or waiting for a peer to
        # subscribe again), so this waits for "connected", bounded.
        for hub in hubs:

            async def state(broker: Any = hub.broker) -> str:
                return str(broker.state)

            await wait_until_async(state, "connected")
    finally:
        await close(hubs, clients)


async def test_broadcasts_follow_a_slot_that_moves(redis_cluster: Any) -> None:
    prefix = f"tfm{uuid.uuid4().hex[:8]}"
    hubs = [make_hub(redis_cluster.url, prefix, None) for _ in range(2)]
    clients: list[Client] = []
    try:
        servers = await start(hubs)
        client, inbox = await client_in(servers[1].port, "green")
        clients.append(client)
        await hubs[0].to("green").emit("before")
        await inbox.wait_for("before")
        reconnects = hubs[1].broker.stats.reconnects
        channel = f"{prefix}#/#green#"
        old = redis_cluster.owner_of(channel)
        new = await asyncio.to_thread(redis_cluster.move_slot_of, channel)
        assert new != old
        await flowing_again(hubs[0], "green", inbox)
        # The member's node was told (sunsubscribe) and subscribed again on the new owner.
        assert hubs[1].broker.stats.reconnects > reconnects
    finally:
        await close(hubs, clients)
