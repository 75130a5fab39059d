"""Behind a real nginx doing per-request round robin with no affinity (the configuration
of ``examples/nginx/nginx.conf``, run as is with this test's ports), three tether hubs on
the real Redis serve many official Node ``socket.io-client``s: polling only, and the
default transports (polling, then an upgrade that only the owner node accepts). Acked
events both ways and room broadcasts, zero errors; the forwarded requests are counted.

nginx, the Node clients and the hubs' Redis connections stay on 127.0.0.1; the processes
are stopped by their PID; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nginx_proxy import NGINX, nginx
from tether.broker import RedisBroker
from tether.realtime import Hub, Socket

ROOT = Path(__file__).resolve().parents[2]
SWARM = ROOT / "tests" / "node" / "sio_swarm.js"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
REDIS = "redis://127.0.0.1:6379/0"
WAIT = 60.0

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is installed by make test")


def install(hub: Hub) -> None:
    @hub.on("join")
    async def join(socket: Socket, room: str) -> str:
        await socket.join(room)
        return "ok"

    @hub.on("add")
    async def add(socket: Socket, a: int, b: int) -> int:
        return a + b

    @hub.on("ask-me")
    async def ask_me(socket: Socket) -> Any:
        return await socket.emit_with_ack("question", "6x7?", timeout=20)


@contextlib.asynccontextmanager
async def three_nodes() -> AsyncIterator[list[Any]]:
    prefix = f"tether-nginx-{uuid.uuid4().hex[:8]}"
    hubs = [Hub(broker=RedisBroker(REDIS, prefix=prefix)) for _ in range(3)]
    servers = []
    try:
        for hub in hubs:
            install(hub)
            servers.append(await hub.serve("127.0.0.1", 0))
        ids = {hub.broker.node_id for hub in hubs}
        async with asyncio.timeout(WAIT):
            for hub in hubs:
                while not ids <= set(await hub.broker.live_nodes()):
                    await asyncio.sleep(0.05)
        yield list(zip(hubs, servers, strict=True))
    finally:
        for hub in hubs:
            await hub.close()
        for hub in hubs:
            await hub.broker.close()


async def swarm(url: str, options: dict[str, Any], hubs: list[Hub], broadcasts: int) -> Any:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(SWARM),
        url,
        json.dumps({**options, "broadcasts": broadcasts, "timeout": 50_000}),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            while True:
                line = json.loads(await proc.stdout.readline())
                if line["ev"] == "ready":
                    # Every client is in the room: broadcast from every node in turn.
                    for n in range(broadcasts):
                        await hubs[n % 3].to("room").emit("news", n)
                elif line["ev"] == "done":
                    await proc.wait()
                    return line
    finally:
        if proc.returncode is None:
            proc.kill()  # by its PID, if the bounded wait ran out
            await proc.wait()


@pytest.mark.parametrize(
    ("transports", "clients"), [(["polling"], 200), (None, 200)], ids=["polling", "default"]
)
async def test_official_clients_behind_round_robin_nginx(
    tmp_path: Path, transports: list[str] | None, clients: int
) -> None:
    async with three_nodes() as nodes:
        hubs = [hub for hub, _ in nodes]
        with nginx(tmp_path, [server.port for _, server in nodes]) as port:
            options = {"clients": clients, "acks": 5, "transports": transports}
            result = await swarm(f"http://127.0.0.1:{port}", options, hubs, broadcasts=20)
        forwarded = sum(h.metrics.total("tether_polling_forwarded_total") for h in hubs)
        served = sum(h.metrics.total("tether_polling_served_for_others_total") for h in hubs)
        failed = sum(h.metrics.total("tether_polling_forward_failed_total") for h in hubs)
    print(f"\n{transports or 'default'}: {result}; forwarded {forwarded:.0f}")
    error_log = tmp_path / "nginx" / "error.log"
    seen = (
        f"{result}; forwards failed: {failed:.0f}; nginx error.log: "
        f"{error_log.read_text()[-3000:] if error_log.exists() else '-'}"
    )
    assert result["errors"] == [], seen
    assert result["connected"] == clients, seen
    assert result["acks"] == clients * 5, seen
    assert result["asked"] == clients, seen
    assert result["news_complete"] == clients, seen
    # Long-polls still waiting at the end were served but not yet answered.
    assert 0 < forwarded <= served
    on_websocket = result["transports"].get("websocket", 0)
    if transports is None:
        # The upgrade succeeds when its probe reaches the owner (one node in three); the
        # others stay on polling, forwarded.
        assert 0 < on_websocket < clients
    else:
        assert on_websocket == 0
