"""The ASGI adapter mounted under a sub-path (Starlette's ``Mount("/rt", app=ASGIApp(hub))``,
FastAPI's ``app.mount``), under a real uvicorn: both transports reach the hub, the rest of
the app still answers."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from tether.asgi import ASGIApp
from tether.realtime import Client, Hub, Socket

from .serving import uvicorn_serving


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


async def home(request: object) -> PlainTextResponse:
    return PlainTextResponse("home")


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
@pytest.mark.parametrize("transports", [["polling"], ["websocket"], None])
async def test_a_hub_mounted_under_a_sub_path(transports: list[str] | None, framework: str) -> None:
    hub = Hub()

    @hub.on("add")
    async def add(socket: Socket, a: int, b: int) -> int:
        return a + b

    app = Starlette(routes=[Route("/", home), Mount("/rt", app=ASGIApp(hub))])
    if framework == "fastapi":
        app = FastAPI()
        app.get("/", response_class=PlainTextResponse)(lambda: "home")
        app.mount("/rt", ASGIApp(hub))
    async with uvicorn_serving(app) as server:
        port = server.config.port
        client = Client(reconnection=False)
        await client.connect(
            f"http://127.0.0.1:{port}", path="/rt/socket.io/", transports=transports
        )
        assert await client.emit_with_ack("add", 2, 3, timeout=10) == 5
        await client.disconnect()
        assert await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/") == b"home"
    await hub.close()
