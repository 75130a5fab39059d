"""Start a hub under either deployment: tether's own server, or a real uvicorn through
the ASGI adapter (both on 127.0.0.1, stopped at the end, waits bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from tether.asgi import ASGIApp
from tether.realtime import Hub

DEPLOYMENTS = ("tether", "uvicorn")
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (bounded) until ``predicate()`` is true, checking every few milliseconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def settle(turns: int = 200) -> None:
    """Let the event loop run ``turns`` times: client and server share this loop, so
    bytes already written on 127.0.0.1 have been read and handled by then (unless the
    server holds reading). Turns of the loop, not wall-clock time."""
    for _ in range(turns):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, *, lifespan: str = "off") -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (``server.config.port``)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        await wait_until(lambda: server.started or task.done())
        assert server.started, "uvicorn did not start"
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


@contextlib.asynccontextmanager
async def serving(hub: Hub, deployment: str) -> AsyncIterator[int]:
    """Serve ``hub`` under ``deployment`` ("tether" or "uvicorn"); yields the port."""
    if deployment == "tether":
        async with hub.serve("127.0.0.1", 0) as server:
            yield server.port
        return
    async with uvicorn_serving(ASGIApp(hub)) as server:
        try:
            yield server.config.port
        finally:
            await hub.close()
