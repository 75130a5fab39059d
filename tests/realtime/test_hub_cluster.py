"""Several hubs as one server through a ClusterBroker (MemoryCluster and real Redis).

Three hubs run in this process (one test runs them as separate processes), each with
tether clients. Every wait is bounded and nothing asserts on timing; "nothing else
arrived" is checked against a later marker on the same connection (delivered in order).
"""

from __future__ import annotations

import pytest

from tether.broker import RedisBroker
from tether.testing.broker import wait_until

from .cluster_helpers import WAIT, Cluster, Inbox, handlers

pytestmark = pytest.mark.timeout(120)


async def _joined(cluster: Cluster, node: int, *rooms: str, ns: str = "/") -> tuple[str, Inbox]:
    client, inbox = await cluster.client(node, ns)
    for room in rooms:
        assert await client.emit_with_ack("join", room, namespace=ns, timeout=WAIT) == "ok"
    sid = await client.emit_with_ack("whoami", namespace=ns, timeout=WAIT)
    return sid, inbox


async def _marker(cluster: Cluster, inboxes: list[Inbox], ns: str = "/") -> None:
    """A namespace-wide marker from node 0: everything sent before it has arrived."""
    await cluster.hubs[0].of(ns).emit("marker")
    for inbox in inboxes:
        await inbox.wait_for("marker")


async def test_room_broadcast_reaches_every_node_once(cluster: Cluster) -> None:
    # Two clients per node: one in "r" (and "s"), one outside.
    members = [await _joined(cluster, n, "r", "s") for n in range(3)]
    others = [await _joined(cluster, n) for n in range(3)]
    await cluster.hubs[1].to("r", "s").emit("news", 1, b"\x00bin", {"k": [b"x"]})
    await _marker(cluster, [i for _, i in members + others])
    for _, inbox in members:
        assert inbox.named("news") == [(1, b"\x00bin", {"k": [b"x"]})]
    for _, inbox in others:
        assert inbox.named("news") == []


async def test_except_and_sid_rooms_across_nodes(cluster: Cluster) -> None:
    a = await _joined(cluster, 0, "r")
    b = await _joined(cluster, 1, "r", "quiet")
    c = await _joined(cluster, 2, "r")
    await cluster.hubs[0].to("r").except_("quiet").emit("e1")
    await cluster.hubs[2].except_("quiet").emit("e2")  # namespace-wide, except a room
    await cluster.hubs[0].to(b[0]).emit("direct", "to-b")  # b's sid room, on node 1
    await cluster.hubs[1].to(c[0]).emit("direct", "to-c")
    await _marker(cluster, [a[1], b[1], c[1]])
    assert [len(i.named("e1")) for _, i in (a, b, c)] == [1, 0, 1]
    assert [len(i.named("e2")) for _, i in (a, b, c)] == [1, 0, 1]
    assert b[1].named("direct") == [("to-b",)] and c[1].named("direct") == [("to-c",)]
    assert a[1].named("direct") == []


async def test_local_stays_on_this_node(cluster: Cluster) -> None:
    a = await _joined(cluster, 0, "r")
    b = await _joined(cluster, 1, "r")
    await cluster.hubs[0].local.to("r").emit("mine")
    await _marker(cluster, [a[1], b[1]])
    assert len(a[1].named("mine")) == 1 and b[1].named("mine") == []


@pytest.mark.parametrize("ns", ["/chat", "/late", "/dyn-abc"])
async def test_other_namespaces_fan_out(cluster: Cluster, ns: str) -> None:
    if ns == "/late":
        # Created after the hubs started.
        for hub in cluster.hubs:
            handlers(hub.of("/late"))
    a = await _joined(cluster, 0, "r", ns=ns)
    b = await _joined(cluster, 2, "r", ns=ns)
    await cluster.hubs[1].of(ns).to("r").emit("hello", ns)
    await cluster.hubs[1].of(ns).emit("all")
    for _, inbox in (a, b):
        await inbox.wait_for("all")
        assert inbox.named("hello") == [(ns,)]


async def test_last_leave_drops_interest(cluster: Cluster) -> None:
    client, _ = await cluster.client(2)
    assert await client.emit_with_ack("join", "r", timeout=WAIT) == "ok"
    broker = cluster.hubs[2].broker
    assert broker.has_interest("/", "r")
    assert await client.emit_with_ack("leave", "r", timeout=WAIT) == "ok"
    await client.disconnect()
    await wait_until(
        lambda: not broker.has_interest("/", "r") and not broker.has_interest("/"),
        "the interest of node 2 dropped",
    )


async def test_interest_routing_many_broadcasts(cluster: Cluster) -> None:
    """Node 2 has sockets but none in "hot": it receives none of 10,000 broadcasts (2,000
    on a MemoryCluster, which delivers inside publish: a burst of 10,000 in one loop turn
    overflows the receiving clients' bounded outboxes, as it should)."""
    count = 10_000 if isinstance(cluster.hubs[0].broker, RedisBroker) else 2000
    hot0 = await _joined(cluster, 0, "hot")
    hot1 = await _joined(cluster, 1, "hot")
    cold = await _joined(cluster, 2, "cold")
    quiet = cluster.hubs[2].broker.stats
    before = (quiet.received_by_kind.get("room", 0), quiet.delivered, quiet.irrelevant)
    for i in range(count):
        await cluster.hubs[0].to("hot").emit("tick", i)
    await hot1[1].wait_for("tick", count, timeout=60)
    await _marker(cluster, [hot0[1], hot1[1], cold[1]])
    assert [a[0] for a in hot1[1].named("tick")] == list(range(count))  # in order
    assert len(hot0[1].named("tick")) == count
    assert cold[1].named("tick") == []
    after = (quiet.received_by_kind.get("room", 0), quiet.delivered, quiet.irrelevant)
    # Only the marker (namespace channel) reached node 2.
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] - before[1] == 1
    assert cluster.hubs[1].broker.stats.received_by_kind.get("room", 0) >= count


async def test_sid_targeted_emit_reaches_only_the_owners_node(cluster: Cluster) -> None:
    """``to(sid)`` goes to the sid's own room channel: only its node receives it."""
    target_sid, target = await _joined(cluster, 1)
    _, bystander = await _joined(cluster, 2)
    stats = [hub.broker.stats for hub in cluster.hubs]
    before = [s.received_by_kind.get("room", 0) for s in stats]
    for i in range(200):
        await cluster.hubs[0].to(target_sid).emit("dm", i)
    await target.wait_for("dm", 200)
    await _marker(cluster, [target, bystander])
    after = [s.received_by_kind.get("room", 0) for s in stats]
    assert [a for (a,) in target.named("dm")] == list(range(200))
    assert bystander.named("dm") == []
    assert after[1] - before[1] == 200
    assert after[2] == before[2]  # the bystander's node received none of them
