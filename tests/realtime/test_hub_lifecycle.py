"""One way to shut a hub down: leaving ``async with hub.serve(...)``, one
``await hub.close()``, or ``server.close()`` + ``await server.wait_closed()``."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest

import tether
from tether.broker import MemoryBroker
from tether.realtime import Hub, HubServer

from .serving import WAIT, wait_until


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return str(response.read().decode())


async def _clients(hub: Hub, port: int) -> tuple[tether.WebSocket, str]:
    """A WebSocket client and a polling one, both connected to "/"."""
    ws = await tether.connect(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", compression=None
    )
    await ws.recv()
    await ws.send("40")
    await ws.recv()
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    sid = json.loads((await asyncio.to_thread(_get, base))[1:])["sid"]
    request = urllib.request.Request(f"{base}&sid={sid}", data=b"40", method="POST")
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=WAIT)
    await wait_until(lambda: len(hub.sockets) == 2)
    return ws, sid


class Watch:
    """Counts what a shutdown must do: disconnect handlers and broker subscriptions."""

    def __init__(self, hub: Hub, broker: MemoryBroker) -> None:
        self.reasons: list[str] = []
        self.broker = broker

        @hub.on_disconnect()
        async def gone(socket: Any, reason: str) -> None:
            await asyncio.sleep(0)  # an async handler: close waits for it
            self.reasons.append(reason)

    def subscribed(self) -> int:
        # The hub's interest in broker channels (held while it has sockets).
        return len(self.broker.channels)


def _started(watch: Watch) -> bool:
    return watch.broker.state == "connected"


async def _assert_down(hub: Hub, watch: Watch, ws: tether.WebSocket, port: int) -> None:
    assert watch.reasons == ["server shutting down"] * 2
    assert hub.engine.sessions == {}  # the polling one does not linger for a last GET
    assert watch.subscribed() == 0
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
    with pytest.raises(OSError):
        await tether.connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")


@pytest.mark.parametrize("how", ["async with", "hub.close", "server.close"])
async def test_one_call_shuts_everything_down(how: str) -> None:
    broker = MemoryBroker()
    hub = Hub(broker=broker)
    watch = Watch(hub, broker)
    if how == "async with":
        async with hub.serve("127.0.0.1", 0) as server:
            assert isinstance(server, HubServer) and _started(watch)
            port = server.port
            ws, _ = await _clients(hub, port)
            assert watch.subscribed() > 0  # the sockets' sid rooms and the namespace
    else:
        server = await hub.serve("127.0.0.1", 0)
        port = server.port
        ws, _ = await _clients(hub, port)
        if how == "hub.close":
            await hub.close()
        else:
            server.close()
            await server.wait_closed()
    await _assert_down(hub, watch, ws, port)
    await ws.close()


async def test_serve_rejects_unknown_options() -> None:
    with pytest.raises(TypeError):
        Hub().serve("127.0.0.1", 0, compresion="deflate")  # type: ignore[call-arg]
