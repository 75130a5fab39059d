"""Hubs in separate processes on a real Redis, with tether and Node socket.io clients.

Two ``hub_reference_server.py --redis URL --prefix P`` children and one hub in this
process share a Redis prefix: a room spread over the three is one room.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tether.broker import RedisBroker
from tether.realtime import Client, Hub
from tether.testing.broker import wait_until_async

from .cluster_helpers import FAST, REDIS, WAIT, Cluster, Inbox, install_handlers
from .conftest import ServerProcess
from .test_hub_interop import SioClient

if TYPE_CHECKING:
    from tests.conftest import Node

pytestmark = pytest.mark.timeout(120)


async def test_room_spans_processes(hub_server: Callable[..., ServerProcess], node: Node) -> None:
    children, here, hub = await _spread(hub_server)
    js: SioClient | None = None
    try:
        js = await SioClient.start(
            node, f"http://127.0.0.1:{children[0].port}/", {"timeout": int(WAIT * 1000) + 10_000}
        )
        await js.wait("connect")
        assert await js.emit_ack("join", "room") == ["ok"]
        client_b, inbox_b = await _client(here, children[1].port)
        assert await client_b.emit_with_ack("join", "room", timeout=WAIT) == "ok"
        client_c, inbox_c = await here.client(0)
        assert await client_c.emit_with_ack("join", "room", timeout=WAIT) == "ok"
        # From a child process (its client asks it), then from this process.
        await client_b.emit_with_ack("room-emit", "room", "news", 1, timeout=WAIT)
        await hub.to("room").emit("news", 2)
        await inbox_b.wait_for("news", 2)
        await inbox_c.wait_for("news", 2)
        # Each once; the two publishers' broadcasts are ordered per publisher only.
        assert sorted(a for (a,) in inbox_b.named("news")) == [1, 2]
        assert sorted(a for (a,) in inbox_c.named("news")) == [1, 2]
        got = await js.wait_event("news", 2)
        assert sorted(got) == [[1], [2]]
        await hub.emit("marker")  # namespace-wide: after it, nothing more is on the way
        await js.wait_event("marker")
        await inbox_b.wait_for("marker")
        assert len(js.received("news")) == 2 and len(inbox_b.named("news")) == 2
    finally:
        if js is not None:
            await js.close()
        await here.close()
        for child in children:
            child.stop()


async def _client(here: Cluster, port: int) -> tuple[Client, Inbox]:
    client = Client(reconnection=False)
    inbox = Inbox(client)
    here.clients.append(client)
    await client.connect(f"http://127.0.0.1:{port}")
    return client, inbox


async def test_node_killed_with_sigkill_is_reported_missing(
    hub_server: Callable[..., ServerProcess],
) -> None:
    # Two hub processes and one here, a client on each. One child is killed with SIGKILL
    # right before a cluster request: it is still "live" when the request goes out, and
    # the request returns (well before its timeout) with the live nodes' sockets and the
    # dead node's id, once its heartbeat expires.
    children, here, hub = await _spread(hub_server)
    try:
        for port in (children[0].port, children[1].port):
            client, _ = await _client(here, port)
            assert await client.emit_with_ack("join", "room", timeout=WAIT) == "ok"
        local, _ = await here.client(0)
        assert await local.emit_with_ack("join", "room", timeout=WAIT) == "ok"

        async def three_nodes() -> bool:
            return len(await hub.broker.live_nodes()) == 3

        await wait_until_async(three_nodes, True)
        assert len(await hub.timeout(WAIT).to("room").fetch_sockets()) == 3
        others = set(await hub.broker.live_nodes()) - {hub.broker.node_id}
        os.kill(children[1].pid, signal.SIGKILL)
        sockets = await hub.timeout(WAIT * 2).to("room").fetch_sockets()
        assert len(sockets) == 2
        assert len(sockets.missing) == 1 and sockets.missing <= others
        assert not sockets.missing & set(await hub.broker.live_nodes())
        assert hub.broker.pending_requests == 0
    finally:
        await here.close()
        for child in children:
            child.stop()


async def _spread(
    hub_server: Callable[..., ServerProcess],
) -> tuple[list[ServerProcess], Cluster, Hub]:
    """Two hub processes and one hub here, on one Redis prefix."""
    prefix = f"tether-test-{uuid.uuid4().hex[:10]}"
    children = [hub_server("--redis", REDIS, "--prefix", prefix) for _ in range(2)]
    here = Cluster("memory", 0)
    hub = Hub(broker=RedisBroker(REDIS, prefix=prefix, **FAST))  # type: ignore[arg-type]
    install_handlers(hub)
    here.hubs = [hub]
    await here.start()
    return children, here, hub
