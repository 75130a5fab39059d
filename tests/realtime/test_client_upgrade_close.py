"""A session closed by the server while the client upgrades it to WebSocket.

The server drops the probe and keeps the session on polling, where its close packet waits
for the next GET. The client must take the probe's close as a failed upgrade, go back to
polling and see the server's close ("transport close"), never a transport error.
The race is made deterministic: the server closes the session right after the client
paused polling (the probe answered) and before it sends the upgrade packet.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.engine.client import EngineClient
from tether.realtime import Hub
from tether.realtime.client import Client


class _ProbeThatClosesItsSession:
    """Wraps the client's probe WebSocket: when the client is about to send the upgrade
    packet (polling paused, the probe answered), the server closes the Engine.IO session
    first, and the probe's closing handshake completes."""

    def __init__(self, ws: Any, hub: Hub, sid: str) -> None:
        self._ws = ws
        self._hub = hub
        self._sid = sid
        self.upgrade_attempted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def send(self, message: Any, **kwargs: Any) -> None:
        if message == "5":
            self.upgrade_attempted = True
            self._hub.engine.sessions[self._sid].close("forced close", drain=True)
            async with asyncio.timeout(5):
                await self._ws.wait_closed()
        await self._ws.send(message, **kwargs)


async def test_close_during_upgrade_is_a_transport_close(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(ping_interval=0.5, ping_timeout=0.5)
    server = await hub.serve("127.0.0.1", 0)
    probes: list[_ProbeThatClosesItsSession] = []
    real_connect = EngineClient._connect_websocket

    async def connect_probe(self: EngineClient, **params: str) -> Any:
        ws = await real_connect(self, **params)
        if params.get("sid") and not probes:
            probes.append(_ProbeThatClosesItsSession(ws, hub, params["sid"]))
            return probes[0]
        return ws

    monkeypatch.setattr(EngineClient, "_connect_websocket", connect_probe)
    client = Client(reconnection=False)
    reasons: list[str] = []
    client.on("disconnect", reasons.append)
    try:
        await client.connect(f"http://127.0.0.1:{server.port}")
        async with asyncio.timeout(10):
            await client.wait()
        assert probes and probes[0].upgrade_attempted, "the client never tried the upgrade"
        assert reasons == ["transport close"]
        assert hub.engine.sessions == {}
    finally:
        await client.disconnect()
        await hub.close()
        server.close()
        await server.wait_closed()
