"""Braces in a prefix or a namespace name on a real Redis Cluster.

Redis Cluster hashes a name by its tag (the first non-empty ``{...}``) when it has one.
A namespace's recovery log must live in the slot of the namespace channel (the durable
script writes the log and publishes on that channel, on one shard): a prefix like
``{app}`` (everything of an application in one slot) and a namespace like ``/a{b}``
work with recovery on; a name no key can share a slot with is refused when emitting,
with a message that says why.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tether.broker.redis_cluster import RedisClusterBroker
from tether.realtime import Client, Hub, Recovery, Socket

from .cluster_helpers import FAST, WAIT, Inbox
from .test_redis_cluster_failover import close, start

pytestmark = pytest.mark.timeout(60)


def make_hub(url: str, prefix: str, namespaces: list[str]) -> Hub:
    broker = RedisClusterBroker(url, prefix=prefix, **FAST)
    hub = Hub(broker=broker, recovery=Recovery(max_disconnection_duration=30))
    for name in namespaces:

        async def join(socket: Socket, room: str) -> str:
            await socket.join(room)
            return "ok"

        hub.of(name).on("join")(join)
    return hub


@pytest.mark.parametrize(
    ("prefix", "namespace"),
    [("{app}", "/"), ("{app}t", "/chat"), ("t", "/a{b}"), ("t", "/{x}")],
)
async def test_durable_broadcasts_with_braces(
    redis_cluster: Any, prefix: str, namespace: str
) -> None:
    prefix = prefix + uuid.uuid4().hex[:6]
    hubs = [make_hub(redis_cluster.url, prefix, [namespace]) for _ in range(2)]
    clients: list[Client] = []
    try:
        servers = await start(hubs)
        client = Client(reconnection=False)
        clients.append(client)
        inbox = Inbox(client, namespace)
        await client.connect(
            f"http://127.0.0.1:{servers[1].port}", namespaces=[namespace], transports=["websocket"]
        )
        assert await client.emit_with_ack("join", "r", namespace=namespace, timeout=WAIT) == "ok"
        for n in range(5):
            await hubs[0].of(namespace).to("r").emit("n", n)
        await inbox.wait_for("n", 5)
        # Each broadcast came with its offset in the log: (n, offset).
        received = inbox.named("n")
        assert [args[0] for args in received] == list(range(5))
        first_offset = received[0][1]
        missed = await hubs[0].broker.missed(namespace, first_offset)
        assert missed is not None
        assert [m.offset for m in missed] == [args[1] for args in received[1:]]
    finally:
        await close(hubs, clients)


async def test_a_namespace_no_log_can_share_a_slot_with_is_refused(redis_cluster: Any) -> None:
    namespace = "/x}"  # no tag, and a "}" that wrapping it in a tag would cut short
    hubs = [make_hub(redis_cluster.url, f"t{uuid.uuid4().hex[:6]}", [namespace])]
    try:
        await start(hubs)
        with pytest.raises(ValueError, match="no hash tag"):
            await hubs[0].of(namespace).emit("n", 1)
    finally:
        await close(hubs, [])
