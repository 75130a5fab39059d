"""fetch_sockets across nodes: every live node's sockets, remote actions, a dead node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.realtime import Client, Socket
from tether.realtime.remote import RemoteSocket
from tether.testing.broker import wait_until

from .cluster_helpers import WAIT, Cluster, Inbox

pytestmark = pytest.mark.timeout(120)


async def _member(cluster: Cluster, node: int, room: str) -> tuple[Client, Inbox, str]:
    client, inbox = await cluster.client(node)
    assert await client.emit_with_ack("join", room, timeout=WAIT) == "ok"
    assert await client.emit_with_ack("set-data", "node", node, timeout=WAIT) == "ok"
    sid = await client.emit_with_ack("whoami", timeout=WAIT)
    return client, inbox, sid


async def test_fetch_sockets_of_every_node(cluster: Cluster) -> None:
    members = [await _member(cluster, n, "r") for n in range(3)]
    await cluster.client(1)  # not in "r"
    sockets = await cluster.hubs[0].to("r").fetch_sockets()
    assert not sockets.missing
    by_sid = {s.sid: s for s in sockets}
    assert set(by_sid) == {sid for _, _, sid in members}
    for n, (_, _, sid) in enumerate(members):
        s = by_sid[sid]
        assert s.rooms == {sid, "r"} and s.data == {"node": n}
        assert s.handshake.url.startswith("/socket.io/") and "host" in s.handshake.headers
        if n == 0:
            assert isinstance(s, Socket)
        else:
            assert isinstance(s, RemoteSocket) and s.node_id == cluster.hubs[n].broker.node_id
    assert len(await cluster.hubs[2].fetch_sockets()) == 4
    assert len(await cluster.hubs[2].local.fetch_sockets()) == 1

    # Remote actions, from node 0 on the socket of node 2.
    client2, inbox2, sid2 = members[2]
    remote = by_sid[sid2]
    assert isinstance(remote, RemoteSocket)
    await remote.emit("hi", b"\x01")
    await inbox2.wait_for("hi")
    assert inbox2.named("hi") == [(b"\x01",)]
    assert (await remote.join("extra")).replies == {remote.node_id: 1}
    await cluster.hubs[1].to("extra").emit("in-extra")
    await inbox2.wait_for("in-extra")
    await remote.leave("extra")
    (again,) = await cluster.hubs[0].to(sid2).fetch_sockets()
    assert again.rooms == {sid2, "r"}
    gone: list[str] = []
    client2.on("disconnect", gone.append)
    await remote.disconnect()
    await wait_until(lambda: gone == ["io server disconnect"], "node 2's socket disconnected")


async def test_dead_node_mid_request(cluster: Cluster) -> None:
    for n in range(3):
        await _member(cluster, n, "r")
    dying = cluster.hubs[2]
    entered = asyncio.Event()

    async def hang(ns: Any, payload: Any) -> Any:
        entered.set()
        await asyncio.Event().wait()

    dying._cluster._kinds["fetch_sockets"] = hang
    fetch = asyncio.ensure_future(cluster.hubs[0].to("r").fetch_sockets())
    async with asyncio.timeout(WAIT):
        await entered.wait()
    await dying.broker.abort()
    async with asyncio.timeout(WAIT):
        sockets = await fetch
    assert sockets.missing == {dying.broker.node_id}
    assert sorted(s.data["node"] for s in sockets) == [0, 1]
