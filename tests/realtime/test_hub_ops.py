"""``hub.expose()``: Prometheus metrics and a health check on the hub's own port, scraped
over HTTP while clients come and go (real sockets on 127.0.0.1, prometheus-client's own
parser reads what we write)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tether.exceptions import AckTimeout
from tether.realtime import Client, Hub

from .serving import wait_until


def get(url: str) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text, headers = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


async def test_metrics_move_and_health_follows_the_drain() -> None:
    hub = Hub(max_buffered_bytes=1 << 20)
    hub.expose()
    async with hub.serve("127.0.0.1", 0) as server:
        port = server.port
        before = await scrape(port)
        assert before[("tether_sessions_open", ())] == 0
        clients: list[Any] = []
        for transports in (["polling"], ["websocket"], None):
            client = Client(reconnection=False)
            await client.connect(f"http://127.0.0.1:{port}", transports=transports)
            clients.append(client)
        await hub.policy("drop").emit("tick", 1)
        # The default client upgrades to WebSocket after it connected: let it finish.
        await wait_until(
            lambda: sum(s.transport == "websocket" for s in hub.engine.sessions.values()) == 2
        )
        during = await scrape(port)
        assert during[("tether_sessions_open", ())] == 3
        opened = sum(v for (n, _), v in during.items() if n == "tether_sessions_opened_total")
        assert opened == 3
        assert during[("tether_connections_open", ())] >= 2  # WebSockets (+ keep-alive polls)
        for stat in ("published", "received", "dropped", "buffered", "reconnects"):
            assert (f"tether_broker_{stat}", ()) in during
        by_transport = {
            dict(labels)["transport"]: v
            for (n, labels), v in during.items()
            if n == "tether_sessions_by_transport"
        }
        assert by_transport == {"polling": 1, "websocket": 2}  # the default one upgraded
        # Messages both ways, and an acknowledgement that never comes.
        sent_before = during[("tether_messages_out_total", ())]
        received_before = during[("tether_messages_in_total", ())]
        await clients[1].emit("hello", "x" * 100)
        (slowpoke,) = [s for s in hub.sockets.values() if s.transport == "websocket"][:1]
        asking = asyncio.ensure_future(slowpoke.emit_with_ack("never-answered", timeout=0.5))
        await asyncio.sleep(0.1)
        moved = await scrape(port)
        assert moved[("tether_acks_pending", ())] == 1
        assert moved[("tether_messages_out_total", ())] > sent_before
        await wait_until(lambda: hub.metrics.get("tether_messages_in_total") > received_before)
        with contextlib.suppress(AckTimeout):
            await asyncio.wait_for(asking, 5)
        later = await scrape(port)
        assert later[("tether_acks_timed_out_total", ())] == 1
        assert later[("tether_acks_pending", ())] == 0
        assert later[("tether_bytes_in_total", ())] >= during[("tether_bytes_in_total", ())] + 100
        status, body, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        assert json.loads(body) == {
            "status": "ok",
            "broker": "connected",
            "sessions": 3,
            "draining": False,
        }
        for client in clients:
            await client.disconnect()
        await wait_until(lambda: not hub.engine.sessions)
        after = await scrape(port)
        assert after[("tether_sessions_open", ())] == 0
        drain = asyncio.ensure_future(hub.drain(period=0.2, grace=0.2))
        await wait_until(lambda: hub.draining)
        status, body, headers = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
        assert status == 503
        assert json.loads(body)["status"] == "draining"
        assert headers["Retry-After"] == "5"
        await drain


async def test_the_app_behind_still_answers() -> None:
    hub = Hub()
    hub.expose(healthz=None)
    async with hub.serve("127.0.0.1", 0) as server:
        status, _, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{server.port}/healthz")
        assert status == 404
        status, _, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{server.port}/other")
        assert status == 404
        status, text, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200 and "tether_sessions_open" in text
