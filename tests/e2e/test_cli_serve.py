"""``tether serve module:attr`` as real processes on free ports: a Hub, a plain WebSocket
handler, an ASGI app, TLS, and several workers on one port through Redis. Stopped with
SIGTERM by PID: exit 0 and no traceback. Every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

import tether
from tether.realtime import Client

HOST = "127.0.0.1"
WAIT = 20.0
ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import os

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tether.realtime import Hub

    hub = Hub()

    @hub.on("pid")
    async def pid(socket):
        return os.getpid()

    @hub.on("join")
    async def join(socket, room):
        await socket.join(room)
        return "ok"

    @hub.on("shout")
    async def shout(socket, room, text):
        await hub.to(room).emit("heard", text, os.getpid())

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def home(request):
        return PlainTextResponse("asgi home")

    app = Starlette(routes=[Route("/", home)])
    not_an_app = 42
    """
)


class Served:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def first_line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), WAIT)
        if not raw:
            assert self.proc.stderr is not None
            err = await asyncio.wait_for(self.proc.stderr.read(), WAIT)
            raise AssertionError(f"no output; stderr: {err.decode(errors='replace')}")
        return raw.decode().strip()

    async def stop(self) -> tuple[int | None, str]:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
            return None, ""
        assert self.proc.stderr is not None
        err = (await asyncio.wait_for(self.proc.stderr.read(), WAIT)).decode(errors="replace")
        return self.proc.returncode, err


@pytest.fixture
async def tether_serve(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Served, int]]]]:
    (tmp_path / "myapp.py").write_text(APP)
    started: list[Served] = []

    async def start(*args: str) -> tuple[Served, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether.cli",
            "serve",
            *args,
            "--host",
            HOST,
            "--port",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "src")},
            start_new_session=True,
        )
        served = Served(proc)
        started.append(served)
        line = await served.first_line()
        assert line.startswith(f"tether serving {args[0]} on "), line
        port = int(line.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
        return served, port

    yield start
    for served in started:
        await served.stop()


def fetch(url: str, context: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=WAIT, context=context) as response:
        return bytes(response.read())


async def test_serve_a_hub_then_stop_it_gracefully(tether_serve: Any) -> None:
    served, port = await tether_serve("myapp:hub", "--metrics")
    client = Client(reconnection=False)
    await client.connect(f"http://{HOST}:{port}")
    assert await client.emit_with_ack("pid", timeout=WAIT) == served.proc.pid
    metrics = await asyncio.to_thread(fetch, f"http://{HOST}:{port}/metrics")
    assert b"tether_sessions_open 1.0" in metrics
    await client.disconnect()
    status, err = await served.stop()
    assert status == 0
    assert "Traceback" not in err


async def test_serve_a_websocket_handler(tether_serve: Any) -> None:
    served, port = await tether_serve("myapp:echo")
    async with tether.connect(f"ws://{HOST}:{port}/") as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "hello"
    status, err = await served.stop()
    assert status == 0 and "Traceback" not in err


async def test_serve_an_asgi_app(tether_serve: Any) -> None:
    served, port = await tether_serve("myapp:app")
    assert await asyncio.to_thread(fetch, f"http://{HOST}:{port}/") == b"asgi home"
    status, err = await served.stop()
    assert status == 0 and "Traceback" not in err


async def test_serve_over_tls(tether_serve: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    served, port = await tether_serve(
        "myapp:echo", "--certfile", str(certfile), "--keyfile", str(keyfile)
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with tether.connect(f"wss://{HOST}:{port}/", ssl=context) as ws:
        await ws.send("secret")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "secret"
    status, _ = await served.stop()
    assert status == 0


async def test_workers_share_one_port_and_rooms_through_redis(tether_serve: Any) -> None:
    prefix = f"tether-serve-{uuid.uuid4().hex[:8]}"
    served, port = await tether_serve(
        "myapp:hub",
        "--workers",
        "2",
        "--redis",
        "redis://127.0.0.1:6379/0",
        "--redis-prefix",
        prefix,
    )
    # Connect until two clients landed on different workers (the kernel spreads them).
    clients: dict[int, Client] = {}
    others: list[Client] = []
    async with asyncio.timeout(WAIT):
        while len(clients) < 2:
            client = Client(reconnection=False)
            await client.connect(f"http://{HOST}:{port}", transports=["websocket"])
            pid = await client.emit_with_ack("pid", timeout=WAIT)
            if pid in clients:
                others.append(client)
            else:
                clients[pid] = client
    heard: list[Any] = []
    a, b = clients.values()
    b.on("heard", lambda text, pid: heard.append((text, pid)))
    for client in (a, b):
        assert await client.emit_with_ack("join", "room", timeout=WAIT) == "ok"
    await a.emit("shout", "room", "across workers")
    async with asyncio.timeout(WAIT):
        while not heard:
            await asyncio.sleep(0.02)
    sender = next(pid for pid, c in clients.items() if c is a)
    assert heard == [("across workers", sender)]  # emitted on a's worker, heard on b's
    for client in [*clients.values(), *others]:
        await client.disconnect()
    status, err = await served.stop()
    assert status == 0 and "Traceback" not in err


async def test_bad_targets_say_why(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    for target, why in [
        ("myapp", "expected module:attr"),
        ("nomodule:hub", "cannot import"),
        ("myapp:nothing", "has no attribute"),
        ("myapp:not_an_app", "is not a Hub"),
    ]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether.cli",
            "serve",
            target,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        _, err = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 2
        assert why in err.decode(), err
