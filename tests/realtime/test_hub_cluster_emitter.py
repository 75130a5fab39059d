"""tether.broker.Emitter: a process with no hub publishes into a cluster of hubs on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tether.broker import Emitter

from .cluster_helpers import REDIS, WAIT, Cluster, Inbox

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def redis_cluster() -> AsyncIterator[Cluster]:
    c = await Cluster("redis").start()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def emitter(redis_cluster: Cluster) -> AsyncIterator[Emitter]:
    e = Emitter(REDIS, prefix=redis_cluster.hubs[0].broker.prefix)  # type: ignore[attr-defined]
    try:
        yield e
    finally:
        await e.close()


async def _joined(cluster: Cluster, node: int, *rooms: str) -> Inbox:
    client, inbox = await cluster.client(node)
    for room in rooms:
        assert await client.emit_with_ack("join", room, timeout=WAIT) == "ok"
    return inbox


async def _all_got_marker(emitter: Emitter, *inboxes: Inbox) -> None:
    # Delivery is in order on each connection: once the marker is in, whatever was
    # published before it has arrived too, or never will.
    await emitter.emit("marker")
    for inbox in inboxes:
        await inbox.wait_for("marker")


async def test_room_emit_with_binary_and_except(redis_cluster: Cluster, emitter: Emitter) -> None:
    a = await _joined(redis_cluster, 0, "r")
    b = await _joined(redis_cluster, 2, "r", "muted")
    outsider = await _joined(redis_cluster, 1)
    await emitter.to("r").emit("news", 1, b"\x00\xff", {"k": None})
    await emitter.to("r").except_("muted").emit("loud", "x")
    await _all_got_marker(emitter, a, b, outsider)
    assert a.named("news") == [(1, b"\x00\xff", {"k": None})]
    assert b.named("news") == [(1, b"\x00\xff", {"k": None})]
    assert outsider.named("news") == []
    assert a.named("loud") == [("x",)] and b.named("loud") == [] and outsider.named("loud") == []


async def test_several_rooms_reach_each_socket_once(
    redis_cluster: Cluster, emitter: Emitter
) -> None:
    both = await _joined(redis_cluster, 0, "a", "b")
    only_b = await _joined(redis_cluster, 1, "b")
    await emitter.to("a", "b").emit("hi")
    await _all_got_marker(emitter, both, only_b)
    assert both.named("hi") == [()] and only_b.named("hi") == [()]


async def test_sockets_join_then_emit(redis_cluster: Cluster, emitter: Emitter) -> None:
    inboxes = [await _joined(redis_cluster, node) for node in range(3)]
    await emitter.sockets_join("late")

    async def everyone_in_late() -> bool:
        sockets = await redis_cluster.hubs[0].to("late").fetch_sockets()
        return len(sockets) == 3

    async with asyncio.timeout(WAIT):
        while not await everyone_in_late():
            await asyncio.sleep(0.02)
    await emitter.to("late").emit("welcome")
    for inbox in inboxes:
        await inbox.wait_for("welcome")
    await emitter.to("late").sockets_leave("late")
    async with asyncio.timeout(WAIT):
        while await redis_cluster.hubs[1].to("late").fetch_sockets():
            await asyncio.sleep(0.02)


async def test_disconnect_sockets_and_server_side_emit(
    redis_cluster: Cluster, emitter: Emitter
) -> None:
    calls: list[tuple[int, tuple[Any, ...]]] = []
    for n, hub in enumerate(redis_cluster.hubs):
        hub.on_server_event("tick")(lambda *args, n=n: calls.append((n, args)))
    # A node listens to a namespace's commands while it has sockets in it.
    await _joined(redis_cluster, 0, "gone")
    await _joined(redis_cluster, 1)
    await _joined(redis_cluster, 2)
    await emitter.server_side_emit("tick", 7)
    async with asyncio.timeout(WAIT):
        while len(calls) < 3:
            await asyncio.sleep(0.02)
    assert sorted(calls) == [(0, (7,)), (1, (7,)), (2, (7,))]

    await emitter.to("gone").disconnect_sockets()
    async with asyncio.timeout(WAIT):
        while redis_cluster.clients[0].connected:
            await asyncio.sleep(0.02)
    assert redis_cluster.clients[1].connected


async def test_other_namespace_and_reserved_names(redis_cluster: Cluster, emitter: Emitter) -> None:
    _client, inbox = await redis_cluster.client(1, "/chat")
    await emitter.of("/chat").emit("in-chat", "ok")
    await inbox.wait_for("in-chat")
    assert inbox.named("in-chat") == [("ok",)]
    with pytest.raises(ValueError):
        await emitter.emit("disconnect")
