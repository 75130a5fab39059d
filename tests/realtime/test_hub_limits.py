"""The hub's limits and expiries: the slow-consumer bound of the engine's outbox (both
transports), ``max_connections``, and the expiry of connection-state recovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import types
import urllib.error
import urllib.request
from typing import Any

import pytest

import tether
import tether.realtime.recovery as recovery_module
from tether.engine import SessionState
from tether.exceptions import ConnectionClosed
from tether.realtime import Hub, Recovery

from .serving import WAIT, wait_until

BIG = "x" * 65536


def _ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"


async def _sio_connect(port: int, auth: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """A raw WebSocket connected to "/"; returns it and the CONNECT reply."""
    ws = await tether.connect(_ws_url(port), compression=None)
    assert str(await ws.recv()).startswith("0")
    await ws.send("40" + (json.dumps(auth) if auth else ""))
    reply = str(await asyncio.wait_for(ws.recv(), WAIT))
    assert reply.startswith("40{"), reply
    return ws, json.loads(reply[2:])


# --------------------------------------------------------------------- slow consumers


async def test_websocket_client_that_stops_reading_is_disconnected() -> None:
    hub = Hub(max_buffered_packets=8)
    reasons: list[str] = []

    @hub.on_disconnect()
    def gone(socket: Any, reason: str) -> None:
        reasons.append(reason)

    async with hub.serve("127.0.0.1", 0, write_limit=4096) as server:
        ws, _ = await _sio_connect(server.port)
        ws.hold_reading(True)  # the client stops reading: TCP fills up, then the outbox
        (socket,) = hub.sockets.values()
        session = socket.session
        sent = 0
        async with asyncio.timeout(WAIT):
            while session.state is SessionState.OPEN:
                await socket.emit("big", BIG)
                sent += 1
                await asyncio.sleep(0)  # let the transport report backpressure
        await wait_until(lambda: reasons == ["transport error"])
        assert session.closed_reason == "transport error"
        assert hub.engine.slow_consumer_closes == 1
        assert sent > 8  # the bound is on what waits, not on what was sent
        ws.hold_reading(False)
        with contextlib.suppress(tether.ConnectionClosed):
            async with asyncio.timeout(WAIT):
                while True:  # what was written before the close, then the close
                    await ws.recv()
        assert ws.close_code is not None


def _http(url: str, body: bytes | None = None) -> str:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return str(response.read().decode())


async def test_polling_client_that_stops_polling_is_disconnected() -> None:
    hub = Hub(max_buffered_packets=8)
    async with hub.serve("127.0.0.1", 0) as server:
        base = f"http://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=polling"
        sid = json.loads((await asyncio.to_thread(_http, base))[1:])["sid"]
        await asyncio.to_thread(_http, f"{base}&sid={sid}", b"40")
        await wait_until(lambda: len(hub.sockets) == 1)
        (socket,) = hub.sockets.values()
        session = socket.session
        # No GET comes: the CONNECT reply waits, then 7 events fit, the 8th does not.
        for i in range(7):
            await socket.emit("tick", i)
            assert session.state is SessionState.OPEN
        await socket.emit("tick", 7)
        assert session.state is SessionState.CLOSED
        assert session.closed_reason == "transport error"
        assert hub.engine.slow_consumer_closes == 1


# --------------------------------------------------------------------- max_connections


async def test_max_connections_closes_the_next_websocket_with_1013_and_polling_gets_503() -> None:
    hub = Hub()
    async with hub.serve("127.0.0.1", 0, max_connections=1) as server:
        first, _ = await _sio_connect(server.port)
        refused = await tether.connect(_ws_url(server.port), compression=None)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(refused.recv(), WAIT)
        assert closed.value.code == 1013
        url = f"http://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=polling"
        with pytest.raises(urllib.error.HTTPError) as status:
            await asyncio.to_thread(urllib.request.urlopen, url, timeout=WAIT)
        assert status.value.code == 503
        assert status.value.headers["Retry-After"] == "5"
        assert hub.metrics.get("tether_connections_refused_total", reason="max_connections") == 2
        await first.close()
        await wait_until(lambda: not hub.engine.sessions and server.open_count == 0)
        second, _ = await _sio_connect(server.port)  # room again
        await second.close()


# --------------------------------------------------------------------- recovery expiry


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def _tick(hub: Hub, ws: Any) -> str:
    """Broadcast once; return the offset the client received with it."""
    await hub.emit("tick", 1)
    packet = str(await asyncio.wait_for(ws.recv(), WAIT))
    event, value, offset = json.loads(packet[2:])
    assert (event, value) == ("tick", 1)
    return str(offset)


async def test_recovery_state_expires_after_max_disconnection_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(recovery_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    hub = Hub(recovery=Recovery(max_disconnection_duration=60.0))
    async with hub.serve("127.0.0.1", 0) as server:
        ws, first = await _sio_connect(server.port)
        offset = await _tick(hub, ws)
        await ws.close()
        await wait_until(lambda: not hub.sockets)

        # Within the duration: the same socket comes back.
        clock.now += 59.0
        ws, again = await _sio_connect(server.port, {"pid": first["pid"], "offset": offset})
        assert again["sid"] == first["sid"]
        assert [s.recovered for s in hub.sockets.values()] == [True]
        offset = await _tick(hub, ws)
        await ws.close()
        await wait_until(lambda: not hub.sockets)

        # Past it: the stored state is gone, the client gets a new session.
        clock.now += 61.0
        ws, late = await _sio_connect(server.port, {"pid": first["pid"], "offset": offset})
        assert late["sid"] != first["sid"] and late["pid"] != first["pid"]
        assert [s.recovered for s in hub.sockets.values()] == [False]
        await ws.close()
