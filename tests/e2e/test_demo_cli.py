"""The demo app's HTTP side and chat protocol, and the ``tether`` command line.

The chat is driven with tether's own Socket.IO client in-process; the command line runs
as real ``python -m tether.cli`` processes on free ports, stopped by their PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tether.demo import create_app, find_client_js
from tether.realtime import Hub
from tether.realtime.client import Client

HOST = "127.0.0.1"
WAIT = 10.0
ROOT = Path(__file__).resolve().parents[2]


def _fetch(url: str, method: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(_fetch, url, method)


@pytest.fixture
async def demo() -> AsyncIterator[Callable[..., Awaitable[tuple[Hub, str]]]]:
    started: list[Any] = []

    async def start(**kwargs: Any) -> tuple[Hub, str]:
        hub = create_app(**kwargs)
        server = await hub.serve(HOST, 0)
        started.append((hub, server))
        return hub, f"http://{HOST}:{server.port}"

    yield start
    for hub, server in started:
        await hub.close()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), WAIT)


# --------------------------------------------------------------------------- HTTP


async def test_page_and_client_bundle(demo: Any) -> None:
    assert find_client_js() is not None, "run `make node-deps`"
    _, url = await demo()
    status, headers, body = await fetch(url + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert "<title>tether chat</title>" in page
    assert '<script src="/socket.io.min.js"></script>' in page
    assert "http://" not in page and "https://" not in page  # self-contained: no CDN

    status, headers, body = await fetch(url + "/socket.io.min.js")
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")
    assert body == find_client_js().read_bytes()  # type: ignore[union-attr]

    status, headers, body = await fetch(url + "/socket.io.min.js", "HEAD")
    assert status == 200 and body == b""

    assert (await fetch(url + "/nothing-here"))[0] == 404
    assert (await fetch(url + "/", "DELETE"))[0] == 405


async def test_missing_client_bundle_is_a_clear_500(demo: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.js"
    _, url = await demo(client_js=missing)
    status, _, body = await fetch(url + "/socket.io.min.js")
    assert status == 500
    assert str(missing) in body.decode()
    assert "--client-js" in body.decode()
    assert (await fetch(url + "/"))[0] == 200  # the page itself still loads

    bundle = tmp_path / "custom.js"
    bundle.write_text("/* a custom build */")
    _, url = await demo(client_js=bundle)
    status, _, body = await fetch(url + "/socket.io.min.js")
    assert (status, body) == (200, b"/* a custom build */")


def test_find_client_js_walks_up(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_client_js(deep) is None
    bundle = tmp_path / "tests/node/node_modules/socket.io-client/dist/socket.io.min.js"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("x")
    assert find_client_js(deep) == bundle.resolve()


# --------------------------------------------------------------------------- chat protocol


class Inbox:
    def __init__(self, client: Client) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        for name in ("message", "system", "presence", "typing"):
            client.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events.append((name, args[0] if args else None))
            self._changed.set()

        return record

    def named(self, name: str) -> list[Any]:
        return [value for n, value in self.events if n == name]

    async def wait(self, name: str, predicate: Callable[[Any], bool] = bool) -> Any:
        async with asyncio.timeout(WAIT):
            while True:
                for value in self.named(name):
                    if predicate(value):
                        return value
                self._changed.clear()
                await self._changed.wait()


async def test_chat_protocol(demo: Any) -> None:
    _, url = await demo()
    alice, bob, carol = Client(), Client(), Client()
    inboxes = [Inbox(c) for c in (alice, bob, carol)]
    a_in, b_in, c_in = inboxes
    try:
        for client in (alice, bob, carol):
            await client.connect(url, transports=["websocket"])

        assert await alice.emit_with_ack("message", {"text": "too early"}, timeout=WAIT) == {
            "error": "join a room first"
        }
        bad = await alice.emit_with_ack("join", {"room": "<script>", "nick": "a"}, timeout=WAIT)
        assert "error" in bad

        joined = await alice.emit_with_ack("join", {"room": "lab", "nick": " Alice "}, timeout=WAIT)
        assert joined == {"room": "lab", "nick": "Alice", "count": 1}
        joined = await bob.emit_with_ack("join", {"room": "lab", "nick": "bob"}, timeout=WAIT)
        assert joined["count"] == 2
        joined = await carol.emit_with_ack("join", {"room": "elsewhere"}, timeout=WAIT)
        assert joined["count"] == 1 and joined["nick"].startswith("guest-")

        assert await a_in.wait("presence", lambda p: p["count"] == 2) == {"room": "lab", "count": 2}
        await a_in.wait("system", lambda s: s["text"] == "bob joined")

        await alice.emit("typing", True)
        assert await b_in.wait("typing") == {"nick": "Alice", "typing": True}

        ack = await alice.emit_with_ack("message", {"text": "hello lab"}, timeout=WAIT)
        assert ack["status"] == "delivered"
        message = await b_in.wait("message")
        assert (message["nick"], message["text"], message["id"]) == (
            "Alice",
            "hello lab",
            ack["id"],
        )

        # other rooms hear nothing; the sender does not get its own message back
        ack = await carol.emit_with_ack("message", {"text": "anyone?"}, timeout=WAIT)
        assert ack["status"] == "delivered"
        ack = await bob.emit_with_ack("message", "plain text works too", timeout=WAIT)
        assert (await a_in.wait("message"))["text"] == "plain text works too"
        assert [m["text"] for m in b_in.named("message")] == ["hello lab"]
        assert c_in.named("message") == []
        assert a_in.named("typing") == []

        # switching rooms updates both rooms' presence
        moved = await bob.emit_with_ack("join", {"room": "elsewhere", "nick": "bob"}, timeout=WAIT)
        assert moved["count"] == 2
        await a_in.wait("presence", lambda p: p == {"room": "lab", "count": 1})
        await c_in.wait("presence", lambda p: p == {"room": "elsewhere", "count": 2})

        # leaving (disconnecting) too
        await bob.disconnect()
        await c_in.wait("presence", lambda p: p == {"room": "elsewhere", "count": 1})
        await c_in.wait("system", lambda s: s["text"] == "bob left")
    finally:
        for client in (alice, bob, carol):
            await client.disconnect()


# --------------------------------------------------------------------------- command line


class Proc:
    """A ``python -m tether.cli`` process; stopped by its PID (and group)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str, stdin: bool = False) -> Proc:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether.cli",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        return cls(proc)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), WAIT)
        if not raw:
            err = b""
            if self.proc.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    err = await asyncio.wait_for(self.proc.stderr.read(), 2)
            raise AssertionError(f"no output; stderr: {err.decode(errors='replace')}")
        return raw.decode().rstrip("\n")

    async def communicate(self, data: bytes) -> tuple[str, str]:
        out, err = await asyncio.wait_for(self.proc.communicate(data), WAIT)
        return out.decode(), err.decode()

    async def terminate(self) -> int | None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), WAIT)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), WAIT)
            return None
        return self.proc.returncode


@pytest.fixture
async def cli() -> AsyncIterator[Callable[..., Awaitable[Proc]]]:
    procs: list[Proc] = []

    async def start(*args: str, stdin: bool = False) -> Proc:
        proc = await Proc.start(*args, stdin=stdin)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        await proc.terminate()


async def test_cli_demo_serves_and_stops_on_sigterm(cli: Any) -> None:
    proc = await cli("demo", "--host", HOST, "--port", "0")
    line = await proc.line()
    prefix = f"tether demo on http://{HOST}:"
    assert line.startswith(prefix), line
    port = int(line[len(prefix) :])
    status, _, body = await fetch(f"http://{HOST}:{port}/")
    assert status == 200 and b"tether chat" in body
    status, _, body = await fetch(f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith(b"0{")
    assert await proc.terminate() == 0


async def test_cli_echo_and_connect(cli: Any) -> None:
    echo = await cli("echo", "--host", HOST, "--port", "0")
    line = await echo.line()
    prefix = f"tether echo on ws://{HOST}:"
    assert line.startswith(prefix), line
    url = line[len("tether echo on ") :]

    client = await cli("connect", url, stdin=True)
    assert await client.line() == f"connected to {url} (Ctrl-D to close)"
    stdin = client.proc.stdin
    assert stdin is not None
    # Interactive: a line, its echo, the next line... (what is in flight when the input
    # ends is not waited for: end of input closes the connection at once).
    for text in ["hello", "wörld", '{"json": true}']:
        stdin.write(text.encode() + b"\n")
        await stdin.drain()
        assert await client.line() == text
    out, err = await client.communicate(b"")
    assert out.splitlines() == ["connection closed: code 1000"]
    assert client.proc.returncode == 0, err
    assert await echo.terminate() == 0


async def test_cli_connect_reports_failures(cli: Any, unused_tcp_port: int) -> None:
    proc = await cli("connect", f"ws://{HOST}:{unused_tcp_port}/", stdin=True)
    _, err = await proc.communicate(b"")
    assert proc.proc.returncode == 1
    assert "cannot connect" in err

    proc = await cli("connect", "http://not-a-ws-url", stdin=True)
    _, err = await proc.communicate(b"")
    assert proc.proc.returncode == 1
    assert "cannot connect" in err


async def test_cli_usage(cli: Any) -> None:
    proc = await cli(stdin=True)
    _, err = await proc.communicate(b"")
    assert proc.proc.returncode == 2
    assert "demo" in err and "echo" in err and "connect" in err
    proc = await cli("--version", stdin=True)
    out, _ = await proc.communicate(b"")
    assert out.startswith("tether ")


def test_main_is_importable_without_running() -> None:
    from tether import cli

    assert callable(cli.main)
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0


async def test_cli_logs_connections_as_json_lines_without_tokens(cli: Any) -> None:
    proc = await cli("--log-format", "json", "demo", "--host", HOST, "--port", "0")
    line = await proc.line()
    port = int(line.rsplit(":", 1)[1])
    secret = "tok-3f9a1c77e2"
    client = Client(reconnection=False)
    await client.connect(
        f"http://{HOST}:{port}/?token={secret}",
        auth={"token": secret},
        transports=["websocket"],
    )
    sid = client.socket("/").sid
    await client.disconnect()
    await asyncio.sleep(0.2)  # the disconnect line is written
    assert await proc.terminate() == 0
    assert proc.proc.stderr is not None
    err = (await asyncio.wait_for(proc.proc.stderr.read(), WAIT)).decode()
    records = [json.loads(raw) for raw in err.splitlines() if raw.startswith("{")]
    assert records, err
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records if r["logger"] == "tether.realtime"]
    connect = next(m for m in messages if m.startswith("connect / "))
    assert f"sid={sid}" in connect and "transport=websocket" in connect
    assert f"from={HOST}:" in connect
    gone = next(m for m in messages if m.startswith("disconnect / "))
    assert f"sid={sid}" in gone and "reason=client namespace disconnect" in gone
    assert secret not in err


def test_the_client_bundle_is_found_where_a_pip_user_puts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("/* bundle */")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TETHER_CLIENT_JS", raising=False)
    assert find_client_js(start=tmp_path) == bundle  # after `npm install socket.io-client`
    other = tmp_path / "elsewhere.js"
    other.write_text("/* another */")
    monkeypatch.setenv("TETHER_CLIENT_JS", str(other))
    assert find_client_js(start=tmp_path) == other
    monkeypatch.setenv("TETHER_CLIENT_JS", str(tmp_path / "missing.js"))
    assert find_client_js(start=tmp_path) is None
