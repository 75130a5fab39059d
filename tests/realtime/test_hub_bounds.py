"""What a client cannot make the hub keep: rooms of gone sockets, recovery state past its
time or its bytes, refused CONNECTs without end, rooms and namespaces without limit."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

import tether
from tether.exceptions import ConnectionRefused, LimitExceeded
from tether.realtime import Hub, Recovery

from .serving import WAIT, wait_until


def _ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"


async def _open(port: int) -> Any:
    ws = await tether.connect(_ws_url(port), compression=None)
    assert str(await ws.recv()).startswith("0")
    return ws


async def _sio_connect(port: int, auth: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    ws = await _open(port)
    await ws.send("40" + (json.dumps(auth) if auth else ""))
    reply = str(await asyncio.wait_for(ws.recv(), WAIT))
    assert reply.startswith("40{"), reply
    return ws, json.loads(reply[2:])


async def test_join_after_disconnect_leaves_no_room_behind() -> None:
    hub = Hub()
    left = asyncio.Event()
    joined: list[set[str]] = []

    @hub.on("later")
    async def later(socket):  # type: ignore[no-untyped-def]
        await left.wait()
        await socket.join("late-room")
        joined.append(socket.rooms)

    @hub.on_disconnect()
    async def gone(socket, reason):  # type: ignore[no-untyped-def]
        left.set()

    async with hub.serve("127.0.0.1", 0) as server:
        ws, _ = await _sio_connect(server.port)
        await ws.send('42["later"]')
        await asyncio.sleep(0.05)
        await ws.close()
        await wait_until(lambda: bool(joined))
        assert joined == [set()]
        assert hub.of("/").adapter.rooms == {}


async def test_rooms_joined_by_a_refusing_middleware_are_forgotten() -> None:
    hub = Hub()

    async def join_then_refuse(socket, auth):  # type: ignore[no-untyped-def]
        socket.join("vip")
        raise ConnectionRefused("no")

    hub.use(join_then_refuse)
    async with hub.serve("127.0.0.1", 0) as server:
        ws = await _open(server.port)
        await ws.send("40")
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("44")
        assert hub.of("/").adapter.rooms == {}
        await ws.close()


async def test_recovery_state_expires_on_a_timer_without_broadcasts() -> None:
    hub = Hub(recovery=Recovery(max_disconnection_duration=0.3))
    async with hub.serve("127.0.0.1", 0) as server:
        for _ in range(50):
            ws, _ = await _sio_connect(server.port)
            await ws.close()
        log = hub.of("/").recovery_log
        assert log is not None
        await wait_until(lambda: not hub.sockets)
        assert len(log._stored) > 0
        # No broadcast, no reconnection: the timer alone frees them.
        await wait_until(lambda: len(log._stored) == 0)


async def test_recovery_log_is_capped_in_bytes() -> None:
    hub = Hub(recovery=Recovery(max_bytes=1_000_000))
    async with hub.serve("127.0.0.1", 0) as server:
        ws, first = await _sio_connect(server.port)
        await hub.emit("tick", 0)
        offset = json.loads(str(await asyncio.wait_for(ws.recv(), WAIT))[2:])[-1]
        await ws.close()
        await wait_until(lambda: not hub.sockets)
        log = hub.of("/").recovery_log
        assert log is not None
        for i in range(100):
            await hub.emit("big", "x" * 100_000, i)
        assert log.size <= 1_000_000
        assert len(log._log) < 11
        # The missed packets are gone: the client does not recover (a new session).
        ws, again = await _sio_connect(server.port, {"pid": first["pid"], "offset": offset})
        assert again["sid"] != first["sid"]
        assert [s.recovered for s in hub.sockets.values()] == [False]
        await ws.close()


async def test_refused_connects_are_bounded_per_connection() -> None:
    hub = Hub(max_connect_refusals=5)
    calls: list[int] = []
    running = 0
    peak = 0

    async def check(socket, auth):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        calls.append(1)
        await asyncio.sleep(0.01)
        running -= 1
        raise ConnectionRefused("invalid token")

    hub.use(check)
    async with hub.serve("127.0.0.1", 0) as server:
        ws = await _open(server.port)
        errors = 0
        with pytest.raises(tether.ConnectionClosed):
            for _ in range(2000):
                await ws.send('40{"token":"wrong"}')
                reply = str(await asyncio.wait_for(ws.recv(), WAIT))
                if reply.startswith("44"):
                    assert json.loads(reply[2:]) == {"message": "invalid token"}
                    errors += 1
        assert errors == 5 and len(calls) == 5
        assert hub.metrics.get("tether_connects_refused_total", reason="middleware") == 5
        # CONNECTs sent without waiting for the answer: one middleware call at a time
        # per namespace, the duplicates are not run.
        ws = await _open(server.port)
        for _ in range(200):
            await ws.send('40{"token":"wrong"}')
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("44")
        await asyncio.sleep(0.1)
        assert peak == 1
        assert len(calls) < 5 + 10
        await ws.close()


async def test_rooms_per_socket_and_namespaces_per_connection_are_limited() -> None:
    hub = Hub(max_rooms_per_socket=5, max_namespaces_per_connection=2)
    outcomes: list[Any] = []
    hub.of(re.compile(r"/n\d+"))

    @hub.on("rooms")
    async def rooms(socket, count):  # type: ignore[no-untyped-def]
        try:
            socket.join(*[f"r{i}" for i in range(count)])
            outcomes.append(len(socket.rooms))
        except LimitExceeded as exc:
            outcomes.append(str(exc))
            outcomes.append(len(socket.rooms))

    async with hub.serve("127.0.0.1", 0) as server:
        ws, _ = await _sio_connect(server.port)
        await ws.send('42["rooms",4]')  # 4 + its own room: at the limit
        await ws.send('42["rooms",9]')
        await wait_until(lambda: len(outcomes) == 3)
        assert outcomes[0] == 5
        assert "max_rooms_per_socket=5" in outcomes[1] and outcomes[2] == 5
        assert hub.metrics.get("tether_joins_refused_total", reason="max_rooms") == 1
        await ws.send("40/n1,")
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("40/n1,")
        await ws.send("40/n2,")
        reply = str(await asyncio.wait_for(ws.recv(), WAIT))
        assert reply == '44/n2,{"message":"Too many namespaces on this connection"}'
        await ws.close()
