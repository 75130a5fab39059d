"""Long-polling without sticky sessions: each request of one polling client goes to
another node of the cluster (three hubs, on a MemoryCluster and on the real Redis), and
the session works as if it had one node: connect, acks both ways, room broadcasts. A
WebSocket upgrade on another node is refused (the client stays on polling); when the
owner is gone, its sessions' requests fail fast with 400; when its heartbeat is only late
(the process paused), they are served."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

import tether
from tether.asyncio.httpclient import HTTPConnection
from tether.exceptions import InvalidStatus
from tether.realtime import Socket

from .cluster_helpers import Cluster

PATH = "/socket.io/?EIO=4&transport=polling"
WAIT = 15.0


class RoundRobin:
    """A polling client whose every request goes to the next node, as behind a load
    balancer without affinity."""

    def __init__(self, cluster: Cluster) -> None:
        self.ports = [server.port for server in cluster.servers]
        self.turn = 0
        self.sid = ""

    async def request(self, method: str, body: str = "") -> tuple[int, str]:
        port = self.ports[self.turn % len(self.ports)]
        self.turn += 1
        conn = HTTPConnection("127.0.0.1", port)
        try:
            target = PATH + (f"&sid={self.sid}" if self.sid else "")
            data = body.encode() if body else None
            response = await conn.request(method, target, body=data, timeout=WAIT)
        finally:
            conn.close()
        return response.status, response.body.decode()

    async def open(self) -> dict[str, Any]:
        status, body = await self.request("GET")
        assert status == 200, body
        handshake = json.loads(body[1:])
        self.sid = handshake["sid"]
        return dict(handshake)

    async def send(self, packet: str) -> None:
        status, body = await self.request("POST", packet)
        assert (status, body) == (200, "ok"), (status, body)

    async def receive(self) -> list[str]:
        """One GET (answering pings in a POST); the packets it brought."""
        status, body = await self.request("GET")
        assert status == 200, body
        packets = body.split("\x1e")
        if "2" in packets:
            await self.send("3")
        return [p for p in packets if p not in ("2", "6")]

    async def until(self, predicate: Any) -> list[str]:
        seen: list[str] = []
        async with asyncio.timeout(WAIT):
            while not any(predicate(p) for p in seen):
                seen += await self.receive()
        return seen


def handlers(cluster: Cluster, asked: list[Any]) -> None:
    for hub in cluster.hubs:

        @hub.on("add")
        async def add(socket: Socket, a: int, b: int) -> int:
            return a + b

        @hub.on("ask-me")
        async def ask_me(socket: Socket) -> None:
            asked.append(await socket.emit_with_ack("question", "6x7?", timeout=WAIT))


async def test_a_polling_session_spread_over_three_nodes_works(cluster: Cluster) -> None:
    asked: list[Any] = []
    handlers(cluster, asked)
    client = RoundRobin(cluster)
    owner = cluster.hubs[0]
    await client.open()  # node 0 owns the session
    assert client.sid.startswith(owner.broker.node_id + ".")
    await client.send("40")  # node 1
    connect = await client.until(lambda p: p.startswith("40{"))  # node 2 serves the GET
    assert any(p.startswith("40{") for p in connect)
    # An acknowledged event, sent to one node, answered through another.
    await client.send('421["add",2,3]')
    assert "431[5]" in await client.until(lambda p: p.startswith("431"))
    # Joined a room through whichever node: a broadcast from every node reaches it.
    await client.send('422["join","room"]')
    await client.until(lambda p: p.startswith("432"))
    for i, hub in enumerate(cluster.hubs):
        await hub.to("room").emit("news", i)
    got = await client.until(lambda p: p == '42["news",2]')
    assert [p for p in got if p.startswith('42["news"')] == [f'42["news",{i}]' for i in range(3)]
    # The server asks and the client answers, on other nodes again.
    await client.send('42["ask-me"]')
    question = next(p for p in await client.until(lambda p: '"question"' in p) if '"question"' in p)
    ack_id = question[2 : question.index("[")]
    await client.send(f"43{ack_id}[42]")
    async with asyncio.timeout(WAIT):
        while not asked:
            await asyncio.sleep(0.01)
    assert asked == [42]
    forwarded = sum(h.metrics.total("tether_polling_forwarded_total") for h in cluster.hubs)
    served = owner.metrics.total("tether_polling_served_for_others_total")
    assert forwarded == served > 0
    assert owner.metrics.total("tether_polling_forwarded_total") == 0


async def test_a_websocket_upgrade_on_another_node_is_refused(cluster: Cluster) -> None:
    client = RoundRobin(cluster)
    await client.open()
    port = cluster.servers[1].port
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&sid={client.sid}"
    with pytest.raises(InvalidStatus) as refused:
        await tether.connect(url, compression=None)
    assert refused.value.status == 400
    # The session goes on, on polling.
    await client.send("40")
    await client.until(lambda p: p.startswith("40{"))


async def test_requests_for_a_dead_owner_fail_fast_with_400(cluster: Cluster) -> None:
    client = RoundRobin(cluster)
    await client.open()
    await client.send("40")
    await client.until(lambda p: p.startswith("40{"))
    owner = cluster.hubs[0]
    await owner.close()
    await owner.broker.close()  # the node is gone: it leaves the cluster
    client.turn = 1
    # Within the request's WAIT, far less than a forwarded long-poll would take.
    status, body = await client.request("GET")
    assert status == 400
    assert json.loads(body) == {"code": 1, "message": "Session ID unknown"}
    failed = cluster.hubs[1].metrics.total("tether_polling_forward_failed_total")
    assert failed == 1


async def test_a_forged_sid_gets_400_after_one_hop(cluster: Cluster) -> None:
    client = RoundRobin(cluster)
    client.sid = f"{cluster.hubs[0].broker.node_id}.forged"
    client.turn = 1
    status, body = await client.request("GET")
    assert status == 400
    assert json.loads(body)["message"] == "Session ID unknown"
    client.sid = "nowhere.forged"
    status, _ = await client.request("POST", "40")
    assert status == 400


async def test_a_pause_longer_than_a_heartbeat_ttl_loses_no_session(cluster: Cluster) -> None:
    """The three nodes share this process: blocking it for longer than a node's TTL makes
    every heartbeat look expired when it resumes. A late beat is not a death: the
    long-poll waiting at the owner and a new request through another node are served."""
    client = RoundRobin(cluster)
    await client.open()
    await client.send("40")
    connect = await client.until(lambda p: p.startswith("40{"))
    sid = json.loads(next(p for p in connect if p.startswith("40{"))[2:])["sid"]
    owner = cluster.hubs[0]
    pause = getattr(owner.broker, "node_ttl", 0.5) + 0.6
    client.turn = 1  # the GET goes through node 1 and waits at node 0
    waiting = asyncio.ensure_future(client.receive())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    time.sleep(pause)  # the whole process (every node) stops
    await asyncio.sleep(0.3)  # the forwarder notices the expired beat first
    await owner.to(sid).emit("late", 1)
    async with asyncio.timeout(WAIT):
        assert '42["late",1]' in await waiting
    time.sleep(pause)
    client.turn = 2  # asked while the owner's beat is expired
    await client.send('42["after"]')
    failed = sum(h.metrics.total("tether_polling_forward_failed_total") for h in cluster.hubs)
    assert failed == 0
