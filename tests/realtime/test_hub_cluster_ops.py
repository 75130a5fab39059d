"""sockets_join / sockets_leave / disconnect_sockets across nodes, and the emitter's
commands (join, leave, disconnect, serverSideEmit) applied by hubs."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tether.broker import RedisBroker
from tether.realtime import Client, Hub
from tether.testing.broker import wait_until

from .cluster_helpers import FAST, REDIS, WAIT, Cluster, Inbox, install_handlers

if TYPE_CHECKING:
    from tests.conftest import Node

pytestmark = pytest.mark.timeout(120)


async def _member(cluster: Cluster, node: int, *rooms: str) -> tuple[Client, Inbox]:
    client, inbox = await cluster.client(node)
    for room in rooms:
        assert await client.emit_with_ack("join", room, timeout=WAIT) == "ok"
    await client.emit_with_ack("whoami", timeout=WAIT)
    return client, inbox


async def _marker(cluster: Cluster, inboxes: list[Inbox]) -> None:
    await cluster.hubs[0].emit("marker")
    for inbox in inboxes:
        await inbox.wait_for("marker")


async def test_emit_right_after_sockets_join_reaches_new_members(cluster: Cluster) -> None:
    a = await _member(cluster, 0, "src")
    b = await _member(cluster, 1, "src")
    c = await _member(cluster, 2)
    ids = [hub.broker.node_id for hub in cluster.hubs]
    result = await cluster.hubs[0].to("src").sockets_join("dst")
    assert result.complete and dict(result.replies) == {ids[0]: 1, ids[1]: 1, ids[2]: 0}
    # At once, from the node that has no member in "dst".
    await cluster.hubs[2].to("dst").emit("x", 1)
    await a[1].wait_for("x")
    await b[1].wait_for("x")
    result = await cluster.hubs[2].in_("dst").sockets_leave("dst")
    assert dict(result.replies) == {ids[0]: 1, ids[1]: 1, ids[2]: 0}
    await cluster.hubs[2].to("dst").emit("x", 2)
    await _marker(cluster, [a[1], b[1], c[1]])
    assert a[1].named("x") == [(1,)] and b[1].named("x") == [(1,)] and c[1].named("x") == []


async def test_disconnect_sockets_on_every_node(cluster: Cluster) -> None:
    gone: list[str] = []
    a = await _member(cluster, 0, "bye")
    b = await _member(cluster, 1, "bye")
    c = await _member(cluster, 2)
    for client, _ in (a, b):
        client.on("disconnect", gone.append)
    result = await cluster.hubs[2].to("bye").disconnect_sockets()
    assert sorted(result.replies.values()) == [0, 1, 1] and not result.missing
    await wait_until(lambda: len(gone) == 2, "both members disconnected")
    assert gone == ["io server disconnect"] * 2
    await _marker(cluster, [c[1]])
    assert c[0].connected
    # .local: only this node.
    result = await cluster.hubs[2].local.disconnect_sockets()
    assert dict(result.replies) == {cluster.hubs[2].broker.node_id: 1}


async def test_dead_node_is_reported_missing() -> None:
    c = await Cluster("redis").start()
    try:
        await _member(c, 0, "r")
        dead = c.hubs[2].broker
        await dead.abort()
        result = await c.hubs[0].to("r").sockets_join("r2")
        assert result.replies == {c.hubs[0].broker.node_id: 1, c.hubs[1].broker.node_id: 0}
        assert result.missing == {dead.node_id}
    finally:
        await c.close()


async def test_emitter_commands(node: Node) -> None:
    """The official @socket.io/redis-emitter drives two hubs (see tests/node/redis_emit.js:
    /chat: to r1 "single"; r1 joins j1, j2; all but x leave l1; r2 disconnects (close);
    serverSideEmit("sse", 1, "two"); to r1 "done")."""
    prefix = f"tether-test-{uuid.uuid4().hex[:10]}"
    c = Cluster("memory", 0)
    c.hubs = [Hub(broker=RedisBroker(REDIS, prefix=prefix, **FAST)) for _ in range(2)]  # type: ignore[arg-type]
    seen: list[tuple[Any, ...]] = []
    for hub in c.hubs:
        install_handlers(hub)
        hub.on_server_event("sse")(lambda *args: seen.append(args))
    await c.start()
    try:
        a, inbox_a = await c.client(0, "/chat")
        assert await a.emit_with_ack("join", "r1", namespace="/chat", timeout=WAIT) == "ok"
        b, _ = await c.client(1, "/chat")
        assert await b.emit_with_ack("join", "r2", namespace="/chat", timeout=WAIT) == "ok"
        d, _ = await c.client(1, "/chat")
        assert await d.emit_with_ack("join", "l1", namespace="/chat", timeout=WAIT) == "ok"
        result = await node.arun("redis_emit.js", REDIS, prefix, timeout=30.0)
        assert result.returncode == 0, result.describe()
        await inbox_a.wait_for("done")
        assert inbox_a.named("single")[0][4] == b"\x00\x01\xff"
        chat = [hub.of("/chat") for hub in c.hubs]
        (sock_a,) = chat[0].sockets.values()
        assert {"r1", "j1", "j2"} <= sock_a.rooms
        await wait_until(lambda: not b.connected, "b disconnected by the emitter")
        sock_d = next(s for s in chat[1].sockets.values() if s.sid == d.socket("/chat").sid)
        await wait_until(lambda: "l1" not in sock_d.rooms, "d left l1")
        await wait_until(lambda: len(seen) == 2, "sse on both hubs")
        assert seen == [(1, "two")] * 2
    finally:
        await c.close()
