"""Engine.IO session limits: a cap on open sessions and a per-IP rate of new ones, on
both transports, and a handshake flood that cannot grow the session table."""

from __future__ import annotations

import asyncio
import socket

import pytest

import tether
from tether.exceptions import InvalidStatus
from tether.realtime import Hub

from .serving import WAIT

HANDSHAKE = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"


def _flood(port: int, count: int) -> dict[int, int]:
    """``count`` polling handshakes pipelined on one keep-alive connection, 8 at a time
    (the server's pipelining bound); the statuses seen, counted."""
    statuses: dict[int, int] = {}
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        reader = sock.makefile("rb")
        for start in range(0, count, 8):
            batch = min(8, count - start)
            sock.sendall(HANDSHAKE * batch)
            for _ in range(batch):
                status = int(reader.readline().split()[1])
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reader.read(length)
                statuses[status] = statuses.get(status, 0) + 1
    return statuses


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_max_sessions_caps_a_handshake_flood_on_both_transports() -> None:
    hub = Hub(max_sessions=50, connect_timeout=30)
    async with hub.serve("127.0.0.1", 0) as server:
        port = server.port
        statuses = await asyncio.to_thread(_flood, port, 200)
        assert statuses == {200: 50, 503: 150}
        assert len(hub.engine.sessions) == 50
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        with pytest.raises(InvalidStatus) as info:
            await tether.connect(url, compression=None)
        assert info.value.status == 503
        assert ("Retry-After", "5") in info.value.headers
        # Thousands more attempts: the table stays at the cap and memory stays flat.
        await asyncio.to_thread(_flood, port, 400)
        before = _rss_kib()
        statuses = await asyncio.to_thread(_flood, port, 4000)
        growth = _rss_kib() - before
        assert statuses == {503: 4000}
        assert len(hub.engine.sessions) == 50
        assert growth < 8 * 1024, f"RSS grew {growth} KiB over 4,000 refused handshakes"
        assert hub.metrics.get("tether_sessions_refused_total", reason="max_sessions") == 4551
        assert hub.metrics.get("tether_sessions_open") == 50


async def test_session_rate_per_ip_answers_429_with_retry_after() -> None:
    hub = Hub(session_rate=(1, 20))
    async with hub.serve("127.0.0.1", 0) as server:
        statuses = await asyncio.to_thread(_flood, server.port, 60)
        # The burst of 20 passes; the rest of the flood (well under a second of refill
        # beyond the burst) is refused.
        assert statuses[200] >= 20 and statuses[200] <= 25
        assert statuses[429] == 60 - statuses[200]
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        with pytest.raises(InvalidStatus) as info:
            await tether.connect(url, compression=None)
        assert info.value.status == 429
        assert any(name == "Retry-After" and int(v) >= 1 for name, v in info.value.headers)
        assert hub.metrics.get("tether_sessions_refused_total", reason="rate") == statuses[429] + 1


async def test_message_rate_closes_a_flooding_session_on_both_transports() -> None:
    hub = Hub(message_rate=(10, 50))
    seen: list[int] = []
    reasons: list[str] = []

    @hub.on("n")
    async def n(socket, i):  # type: ignore[no-untyped-def]
        seen.append(i)

    @hub.on_disconnect()
    async def gone(socket, reason):  # type: ignore[no-untyped-def]
        reasons.append(reason)

    async with hub.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        ws = await tether.connect(url, compression=None)
        assert str(await ws.recv()).startswith("0")
        await ws.send("40")
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("40")
        with pytest.raises(tether.ConnectionClosed):
            for i in range(5000):
                await ws.send(f'42["n",{i}]')
            await asyncio.wait_for(ws.recv(), WAIT)
        await asyncio.sleep(0.1)
        # The burst (50, the CONNECT included) got through, then the session was closed.
        assert 40 <= len(seen) <= 55
        assert seen == sorted(seen)
        assert hub.metrics.get("tether_rate_limited_total", transport="websocket") == 1
        # Polling: one POST of more packets than the burst is refused whole.
        status, body = await asyncio.to_thread(_polling_flood, server.port)
        assert status == 429 and "Too many packets" in body
        assert hub.metrics.get("tether_rate_limited_total", transport="polling") == 1


def _polling_flood(port: int) -> tuple[int, str]:
    import json
    import urllib.error
    import urllib.request

    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    with urllib.request.urlopen(base, timeout=WAIT) as resp:
        sid = json.loads(resp.read().decode()[1:])["sid"]
    body = "\x1e".join('42["n",0]' for _ in range(200)).encode()
    req = urllib.request.Request(f"{base}&sid={sid}", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
