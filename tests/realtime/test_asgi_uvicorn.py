"""The hub mounted in a Starlette app, served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import tether
from tether.asgi import ASGIApp
from tether.broker import MemoryBroker
from tether.realtime import Hub

from .serving import uvicorn_serving, wait_until


@pytest.fixture
async def app_url() -> AsyncIterator[str]:
    hub = Hub(ping_interval=5, ping_timeout=5)

    @hub.on("echo")
    async def echo(sock, *args):  # type: ignore[no-untyped-def]
        await sock.emit("echo-back", *args)
        return "acked"

    async def hello(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("hello from starlette")

    api = Starlette(routes=[Route("/hello", hello)])
    async with uvicorn_serving(ASGIApp(hub, other_app=api)) as server:
        yield f"127.0.0.1:{server.config.port}"


def _get(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_other_routes_reach_the_wrapped_app(app_url: str) -> None:
    status, body = await asyncio.to_thread(_get, f"http://{app_url}/hello")
    assert (status, body) == (200, "hello from starlette")


async def test_polling_handshake_and_unknown_sid(app_url: str) -> None:
    status, body = await asyncio.to_thread(
        _get, f"http://{app_url}/socket.io/?EIO=4&transport=polling"
    )
    assert status == 200 and body.startswith("0")
    assert json.loads(body[1:])["upgrades"] == ["websocket"]
    status, body = await asyncio.to_thread(
        _get, f"http://{app_url}/socket.io/?EIO=4&transport=polling&sid=nope"
    )
    assert status == 400
    assert json.loads(body) == {"code": 1, "message": "Session ID unknown"}


async def test_polling_connect_event_and_ack(app_url: str) -> None:
    base = f"http://{app_url}/socket.io/?EIO=4&transport=polling"
    _, body = await asyncio.to_thread(_get, base)
    sid = json.loads(body[1:])["sid"]
    url = f"{base}&sid={sid}"
    status, _ = await asyncio.to_thread(_get, url, b"40")
    assert status == 200
    _, body = await asyncio.to_thread(_get, url)
    assert body.startswith("40{")
    await asyncio.to_thread(_get, url, b'421["echo","hi"]')
    _, body = await asyncio.to_thread(_get, url)
    packets = body.split("\x1e")
    assert '42["echo-back","hi"]' in packets
    assert '431["acked"]' in packets


async def test_websocket_transport_through_uvicorn(app_url: str) -> None:
    uri = f"ws://{app_url}/socket.io/?EIO=4&transport=websocket"
    async with tether.connect(uri, compression=None) as ws:
        opened = await ws.recv()
        assert isinstance(opened, str) and opened.startswith("0")
        assert json.loads(opened[1:])["upgrades"] == []
        await ws.send("40")
        assert (await ws.recv()).startswith("40{")  # type: ignore[union-attr]
        await ws.send('427["echo",{"n":1},[2]]')
        got = {await ws.recv(), await ws.recv()}
        assert got == {'42["echo-back",{"n":1},[2]]', '437["acked"]'}


async def test_upgrade_from_polling_to_websocket(app_url: str) -> None:
    base = f"http://{app_url}/socket.io/?EIO=4&transport=polling"
    _, body = await asyncio.to_thread(_get, base)
    sid = json.loads(body[1:])["sid"]
    async with tether.connect(
        f"ws://{app_url}/socket.io/?EIO=4&transport=websocket&sid={sid}", compression=None
    ) as ws:
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        _, body = await asyncio.to_thread(_get, f"{base}&sid={sid}")
        assert body == "6"
        await ws.send("5")
        await ws.send("40")
        assert (await ws.recv()).startswith("40{")  # type: ignore[union-attr]


async def test_lifespan_reaches_the_hub_and_the_wrapped_app() -> None:
    broker = MemoryBroker()
    hub = Hub(broker=broker)
    events: list[str] = []

    @hub.on_disconnect()
    def gone(sock: Any, reason: str) -> None:
        events.append(f"disconnect: {reason}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        events.append("app startup")
        yield
        events.append("app shutdown")

    def subscribed() -> int:
        # The hub's interest in broker channels (held while it has sockets).
        return len(broker.channels)

    api = Starlette(lifespan=lifespan)
    async with uvicorn_serving(ASGIApp(hub, other_app=api), lifespan="on") as server:
        # Started at startup, before any request.
        assert events == ["app startup"] and broker.state == "connected"
        base = f"http://127.0.0.1:{server.config.port}/socket.io/?EIO=4&transport=polling"
        _, body = await asyncio.to_thread(_get, base)
        sid = json.loads(body[1:])["sid"]
        await asyncio.to_thread(_get, f"{base}&sid={sid}", b"40")
        await wait_until(lambda: len(hub.sockets) == 1)
    # Shutdown closed the hub: its (polling) client, the broker subscription.
    assert events == ["app startup", "disconnect: server shutting down", "app shutdown"]
    assert subscribed() == 0
    assert hub.engine.sessions == {}
