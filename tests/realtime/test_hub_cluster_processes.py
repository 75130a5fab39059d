"""Hubs in separate processes on a real Redis, with tether and Node socket.io clients.

Two ``hub_reference_server.py --redis URL --prefix P`` children and one hub in this
process share a Redis prefix: a room spread over the three is one room.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tether.broker import RedisBroker
from tether.realtime import Client, Hub

from .cluster_helpers import FAST, REDIS, WAIT, Cluster, Inbox, install_handlers
from .conftest import ServerProcess
from .test_hub_interop import SioClient

if TYPE_CHECKING:
    from tests.conftest import Node

pytestmark = pytest.mark.timeout(120)


async def test_room_spans_processes(hub_server: Callable[..., ServerProcess], node: Node) -> None:
    prefix = f"tether-test-{uuid.uuid4().hex[:10]}"
    children = [hub_server("--redis", REDIS, "--prefix", prefix) for _ in range(2)]
    here = Cluster("memory", 0)
    hub = Hub(broker=RedisBroker(REDIS, prefix=prefix, **FAST))  # type: ignore[arg-type]
    install_handlers(hub)
    here.hubs = [hub]
    await here.start()
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
