"""The hub's Origin allow-list on both transports (cross-site WebSocket hijacking), CORS
with credentials, and responses a hook gets wrong."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

import tether
from tether.asgi import ASGIApp
from tether.exceptions import InvalidOption, InvalidStatus
from tether.protocol.handshake import Response
from tether.realtime import Client, Hub

from .serving import WAIT, uvicorn_serving

APP = "https://app.example"
EVIL = "https://evil.example"


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def _handshake(port: int, origin: str | None) -> tuple[int, dict[str, str], str]:
    headers = {"Origin": origin} if origin else {}
    url = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    return _get(url, headers)


async def test_polling_from_a_foreign_origin_gets_403() -> None:
    hub = Hub(cors_origins=[APP], cors_credentials=True)
    async with hub.serve("127.0.0.1", 0) as server:
        port = server.port
        status, headers, body = await asyncio.to_thread(_handshake, port, EVIL)
        assert status == 403
        assert json.loads(body) == {"code": 4, "message": "Origin not allowed"}
        assert "Access-Control-Allow-Origin" not in headers
        assert not hub.engine.sessions  # no session was opened for it
        # The listed origin, the server's own, and a client without Origin all pass.
        status, headers, body = await asyncio.to_thread(_handshake, port, APP)
        assert status == 200 and body.startswith("0")
        assert headers["Access-Control-Allow-Origin"] == APP
        assert headers["Access-Control-Allow-Credentials"] == "true"
        status, _, _ = await asyncio.to_thread(_handshake, port, f"http://127.0.0.1:{port}")
        assert status == 200
        status, _, _ = await asyncio.to_thread(_handshake, port, None)
        assert status == 200
        # A session opened from the app cannot be driven from the foreign origin.
        sid = json.loads(body[1:])["sid"]
        url = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling&sid={sid}"
        status, _, _ = await asyncio.to_thread(_get, url, {"Origin": EVIL})
        assert status == 403
        assert hub.metrics.get("tether_origin_refused_total", transport="polling") == 2


async def test_websocket_from_a_foreign_origin_is_refused_at_the_handshake() -> None:
    hub = Hub(cors_origins=[APP])
    connected: list[str] = []

    @hub.on_connect()
    async def on_connect(socket, auth):  # type: ignore[no-untyped-def]
        connected.append(socket.sid)

    async with hub.serve("127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        with pytest.raises(InvalidStatus) as info:
            await tether.connect(url, origin=EVIL, compression=None)
        assert info.value.status == 403
        assert b"Origin not allowed" in info.value.body
        ws = await tether.connect(url, origin=APP.upper() + "/", compression=None)
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("0")
        await ws.close()
        # The real client (no Origin header) connects and talks.
        client = Client()
        await client.connect(f"http://127.0.0.1:{server.port}", transports=["websocket"])
        assert client.connected
        await client.disconnect()
        assert len(connected) == 1
        assert hub.metrics.get("tether_origin_refused_total", transport="websocket") == 1


async def test_a_custom_process_request_does_not_bypass_the_origin_check() -> None:
    hub = Hub(cors_origins=[APP])
    async with hub.serve("127.0.0.1", 0, process_request=lambda request: None) as server:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        ws = await tether.connect(url, origin=EVIL, compression=None)
        with pytest.raises(tether.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert ws.close_code == 1008
        assert not hub.engine.sessions


async def test_check_origin_off_keeps_only_cors_headers() -> None:
    hub = Hub(cors_origins=[APP], check_origin=False)
    async with hub.serve("127.0.0.1", 0) as server:
        status, headers, _ = await asyncio.to_thread(_handshake, server.port, EVIL)
        assert status == 200
        assert "Access-Control-Allow-Origin" not in headers


def test_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(InvalidOption, match="cors_credentials"):
        Hub(cors_origins="*", cors_credentials=True)
    Hub(cors_origins="*")  # a wildcard without credentials is fine (and not checked)


async def test_asgi_refuses_a_foreign_origin_on_both_transports() -> None:
    hub = Hub(cors_origins=[APP])
    async with uvicorn_serving(ASGIApp(hub)) as server:
        port = server.config.port
        status, _, body = await asyncio.to_thread(_handshake, port, EVIL)
        assert status == 403 and "Origin not allowed" in body
        status, _, _ = await asyncio.to_thread(_handshake, port, APP)
        assert status == 200
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        with pytest.raises(InvalidStatus) as info:
            await tether.connect(url, origin=EVIL, compression=None)
        assert info.value.status == 403
        ws = await tether.connect(url, origin=APP, compression=None)
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("0")
        await ws.close()
    await hub.close()


def test_response_with_a_text_where_headers_go_fails_clearly() -> None:
    with pytest.raises(TypeError, match=r"Response\.text\(401, 'unauthorized'\)"):
        Response(401, "unauthorized")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pairs"):
        Response(401, [("X-A", 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="status"):
        Response(99)


async def test_hooks_that_get_the_response_wrong_give_500_not_a_dropped_connection() -> None:
    def bad_check(request):  # type: ignore[no-untyped-def]
        return Response(401, "unauthorized")  # raises TypeError inside the hook

    def not_a_response(request):  # type: ignore[no-untyped-def]
        return "no"

    async def bad_http(request):  # type: ignore[no-untyped-def]
        return ("200", "text")

    for hook in (bad_check, not_a_response):
        async with tether.serve(
            lambda ws: ws.close(), "127.0.0.1", 0, process_request=hook
        ) as server:
            with pytest.raises(InvalidStatus) as info:
                await tether.connect(f"ws://127.0.0.1:{server.port}/")
            assert info.value.status == 500
    async with tether.serve(lambda ws: ws.close(), "127.0.0.1", 0, http_handler=bad_http) as server:
        status, _, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{server.port}/x", {})
        assert status == 500
