"""tether's Socket.IO ``Hub`` against the official Node ``socket.io-client`` (4.8).

The hub runs in the test's event loop on 127.0.0.1 (port 0); each client is a
``tests/node/sio_client.js`` process that we drive through stdin and that reports what
happened as JSON lines (see the script's header). Every wait is bounded by ``WAIT`` and
nothing asserts on how long something took: "did not arrive" is always checked against
a later marker event on the same connection, which is delivered in order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

import tether
from tether.realtime import ConnectionRefused, Hub, Recovery

if TYPE_CHECKING:
    from tests.conftest import Node

HOST = "127.0.0.1"
WAIT = 15.0  # the bound on any single wait; never reached when things work

# The three ways a client can reach the hub.
TRANSPORTS = {
    "polling": {"transports": ["polling"]},
    "websocket": {"transports": ["websocket"]},
    "upgrade": {},  # the client's default: polling first, then the upgrade
}


def b64(data: bytes) -> dict[str, str]:
    """A binary value as sio_client.js spells it in JSON."""
    return {"$bin": base64.b64encode(data).decode()}


# --------------------------------------------------------------------------- the client


class SioClient:
    """One ``sio_client.js`` process: send commands, wait (bounded) for its reports."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str]) -> None:
        self.proc = proc
        self.argv = argv
        self.lines: list[dict[str, Any]] = []
        self.stderr = b""
        self._changed = asyncio.Event()
        self._next_id = 0
        self._reader = asyncio.ensure_future(self._read())
        self._err_reader = asyncio.ensure_future(self._read_err())

    @classmethod
    async def start(cls, node: Node, url: str, options: dict[str, Any]) -> SioClient:
        argv = [node.exe, str(node.script("sio_client.js")), url, json.dumps(options)]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=node.dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        client = cls(proc, argv)
        await client.wait("ready")
        return client

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.lines.append({"ev": "garbage", "line": line.decode(errors="replace")})
            self._changed.set()
        self._changed.set()

    async def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    def describe(self) -> str:
        shown = "\n".join(json.dumps(line) for line in self.lines[-40:])
        return f"$ {' '.join(self.argv)}\n--- reports ---\n{shown}\n--- stderr ---\n{self.stderr!r}"

    def events(self, ev: str, **match: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("ev") == ev and all(line.get(k) == v for k, v in match.items())
        ]

    def received(self, name: str) -> list[list[Any]]:
        """The argument lists of every server event ``name`` so far."""
        return [line["args"] for line in self.events("event", name=name)]

    async def wait(self, ev: str, count: int = 1, **match: Any) -> list[dict[str, Any]]:
        """Wait until ``count`` reports ``ev`` (with these fields) arrived; return them all."""
        try:
            async with asyncio.timeout(WAIT):
                while len(found := self.events(ev, **match)) < count:
                    if self._reader.done():
                        raise AssertionError(f"client exited before {ev} {match}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {ev} {match} (x{count})\n{self.describe()}") from None
        return found

    async def wait_event(self, name: str, count: int = 1) -> list[list[Any]]:
        await self.wait("event", count, name=name)
        return self.received(name)

    async def command(self, op: str, **fields: Any) -> Any:
        """Send a command and return its result's value (AssertionError on error)."""
        self._next_id += 1
        ident = self._next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, "id": ident, **fields}) + "\n").encode())
        await self.proc.stdin.drain()
        (result,) = await self.wait("result", id=ident)
        if "error" in result:
            raise AssertionError(f"{op} failed: {result['error']}\n{self.describe()}")
        return result["value"]

    async def emit(self, event: str, *args: Any) -> None:
        await self.command("emit", event=event, args=list(args))

    async def emit_ack(self, event: str, *args: Any) -> list[Any]:
        value: list[Any] = await self.command(
            "emit", event=event, args=list(args), ack=True, timeout=int(WAIT * 1000)
        )
        return value

    async def state(self) -> dict[str, Any]:
        value: dict[str, Any] = await self.command("state")
        return value

    async def close(self) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.proc.stdin.write(b'{"op":"exit"}\n')
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 3)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 3)
        for task in (self._reader, self._err_reader):
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 3)


ClientFactory = Callable[..., Awaitable[SioClient]]


@pytest.fixture
async def sio(node: Node) -> AsyncIterator[ClientFactory]:
    """Factory: ``client = await sio(url, transports=[...], auth={...}, ...)``."""
    clients: list[SioClient] = []

    async def start(url: str, **options: Any) -> SioClient:
        options.setdefault("timeout", int(WAIT * 1000) + 10_000)
        client = await SioClient.start(node, url, options)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


class Served:
    """A hub with its tether server; ``restart()`` serves it again on the same port."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.server: tether.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> Served:
        self.server = await self.hub.serve(HOST, self.port)
        self.port = self.server.port
        return self

    async def stop(self) -> None:
        await self.hub.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), WAIT)
            self.server = None


@pytest.fixture
async def serve_hub() -> AsyncIterator[Callable[[Hub], Awaitable[Served]]]:
    served: list[Served] = []

    async def start(hub: Hub) -> Served:
        s = await Served(hub).start()
        served.append(s)
        return s

    yield start
    for s in served:
        await s.stop()


def echo_hub(**kwargs: Any) -> Hub:
    """A hub whose handlers the tests below share."""
    hub = Hub(**kwargs)

    @hub.on("echo")
    async def echo(socket: Any, *args: Any) -> Any:
        return tuple(args)

    @hub.on("join")
    async def join(socket: Any, room: str) -> str:
        socket.join(room)
        return f"joined {room}"

    @hub.on("to-room")
    async def to_room(socket: Any, room: str, text: str) -> None:
        await socket.to(room).emit("room-message", text)

    @hub.on("ping-back")
    async def ping_back(socket: Any, *args: Any) -> None:
        await socket.emit("pong-back", *args)

    return hub


# --------------------------------------------------------------------------- transports


@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_events_and_acks_both_ways(mode: str, serve_hub: Any, sio: ClientFactory) -> None:
    served = await serve_hub(echo_hub())
    client = await sio(served.url, **TRANSPORTS[mode])
    (connected,) = await client.wait("connect")
    if mode == "upgrade":
        await client.wait("upgrade", transport="websocket")
        assert (await client.state())["transport"] == "websocket"
    else:
        assert connected["transport"] == mode
        assert (await client.state())["transport"] == mode
        assert not client.events("upgrade")

    # client -> server, with an ack: the handler's return value
    assert await client.emit_ack("echo", 1, "two", {"three": [3.5, None, True]}) == [
        1,
        "two",
        {"three": [3.5, None, True]},
    ]
    assert await client.emit_ack("echo") == []

    # fire and forget, and the server emits back
    await client.emit("ping-back", "hello", [1, 2])
    assert await client.wait_event("pong-back") == [["hello", [1, 2]]]

    # server -> client, with an ack: the client's callback answers
    sid = connected["id"]
    socket = served.hub.sockets[sid]
    assert socket.transport == ("websocket" if mode != "polling" else "polling")
    answer = await socket.emit_with_ack("question", 42, {"k": "v"}, timeout=WAIT)
    assert answer == ("got:question", 42, {"k": "v"})


async def test_upgrade_reported_by_the_engine(serve_hub: Any, sio: ClientFactory) -> None:
    served = await serve_hub(echo_hub())
    client = await sio(served.url)
    (opened,) = await client.wait("open")
    assert opened["transport"] == "polling"  # the handshake went over polling first
    (connected,) = await client.wait("connect")
    (upgrade,) = await client.wait("upgrade")
    assert upgrade["transport"] == "websocket"
    assert (await client.state())["transport"] == "websocket"
    assert served.hub.sockets[connected["id"]].transport == "websocket"
    assert await client.emit_ack("echo", "after upgrade") == ["after upgrade"]


async def test_broadcast_emit_with_ack_gathers_every_client(
    serve_hub: Any, sio: ClientFactory
) -> None:
    served = await serve_hub(echo_hub())
    a = await sio(served.url, transports=["websocket"])
    b = await sio(served.url, transports=["polling"])
    await a.wait("connect")
    await b.wait("connect")
    replies = await served.hub.of("/").timeout(WAIT).emit_with_ack("survey", "q1")
    assert sorted(replies) == [("got:survey", "q1"), ("got:survey", "q1")]

    assert await a.emit_ack("join", "quiz") == ["joined quiz"]
    replies = await served.hub.to("quiz").timeout(WAIT).emit_with_ack("quiz", 7)
    assert replies == [("got:quiz", 7)]
    await served.hub.emit("marker")
    await b.wait_event("marker")
    assert b.received("quiz") == []


# --------------------------------------------------------------------------- binary


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_binary_nested_both_ways(mode: str, serve_hub: Any, sio: ClientFactory) -> None:
    hub = echo_hub()

    @hub.on("bin")
    async def on_bin(socket: Any, payload: Any, blob: Any) -> Any:
        assert isinstance(payload["inner"]["data"], bytes)
        assert isinstance(payload["list"][0], bytes)
        assert isinstance(blob, bytes)
        await socket.emit(
            "bin-back",
            {"echo": payload["inner"]["data"], "many": [b"\x00", {"deep": b"\xff" * 3}]},
            b"",
        )
        return {"sizes": [len(payload["inner"]["data"]), len(blob)], "blob": blob[::-1]}

    served = await serve_hub(hub)
    client = await sio(served.url, **TRANSPORTS[mode])
    await client.wait("connect")
    data = bytes(range(256))
    ack = await client.emit_ack(
        "bin",
        {"inner": {"data": b64(data)}, "list": [b64(b"\x01\x02"), "text"]},
        b64(b"abc"),
    )
    assert ack == [{"sizes": [256, 3], "blob": b64(b"cba")}]
    (args,) = await client.wait_event("bin-back")
    assert args == [
        {"echo": b64(data), "many": [b64(b"\x00"), {"deep": b64(b"\xff" * 3)}]},
        b64(b""),
    ]

    # and a binary acknowledgement from the client
    (sid,) = (s for s in served.hub.sockets)
    answer = await served.hub.sockets[sid].emit_with_ack("bin-question", [b"\x10\x20"])
    assert answer == ("got:bin-question", [b"\x10\x20"])


# --------------------------------------------------------------------------- rooms


async def test_rooms_and_except(serve_hub: Any, sio: ClientFactory) -> None:
    served = await serve_hub(echo_hub())
    hub = served.hub
    a = await sio(served.url, transports=["websocket"])
    b = await sio(served.url, transports=["polling"])
    (a_conn,) = await a.wait("connect")
    await b.wait("connect")
    assert await a.emit_ack("join", "red") == ["joined red"]
    assert "red" in hub.sockets[a_conn["id"]].rooms

    await hub.to("red").emit("news", "for red")
    await hub.except_("red").emit("outside", "not red")
    await hub.emit("marker", 1)  # everyone; arrives after whatever came before it

    assert await a.wait_event("marker") == [[1]]
    assert await b.wait_event("marker") == [[1]]
    assert a.received("news") == [["for red"]]
    assert b.received("news") == []
    assert a.received("outside") == []
    assert b.received("outside") == [["not red"]]

    # socket.to(room) from a handler: the room minus the sender
    assert await b.emit_ack("join", "red") == ["joined red"]
    await a.emit("to-room", "red", "from a")
    assert await b.wait_event("room-message") == [["from a"]]
    await hub.emit("marker", 2)
    await a.wait_event("marker", 2)
    assert a.received("room-message") == []

    # leaving works
    hub.sockets[a_conn["id"]].leave("red")
    await hub.to("red").emit("news", "second")
    await hub.emit("marker", 3)
    await a.wait_event("marker", 3)
    await b.wait_event("marker", 3)
    assert a.received("news") == [["for red"]]
    assert b.received("news") == [["second"]]


# --------------------------------------------------------------------------- namespaces


async def test_custom_and_dynamic_namespaces(serve_hub: Any, sio: ClientFactory) -> None:
    hub = echo_hub()
    custom = hub.of("/custom")

    @custom.on("where")
    async def where_custom(socket: Any) -> str:
        return socket.namespace.name

    dynamic = hub.of(re.compile(r"^/dyn-\d+$"))

    @dynamic.on("where")
    async def where_dynamic(socket: Any) -> str:
        return socket.namespace.name

    served = await serve_hub(hub)
    main = await sio(served.url, transports=["websocket"])
    c = await sio(served.url + "/custom", transports=["websocket"])
    d = await sio(served.url + "/dyn-42", transports=["polling"])
    await main.wait("connect")
    await c.wait("connect")
    await d.wait("connect")
    assert await c.emit_ack("where") == ["/custom"]
    assert await d.emit_ack("where") == ["/dyn-42"]
    # "/" has no "where" handler: the ack never comes, so only check the namespaces' rooms
    await hub.of("/custom").emit("only-custom", "c")
    await hub.emit("marker")
    await c.wait_event("only-custom")
    await main.wait_event("marker")
    assert main.received("only-custom") == []

    bad = await sio(served.url + "/dyn-x", transports=["websocket"])
    (err,) = await bad.wait("connect_error")
    assert err["message"] == "Invalid namespace"
    assert not bad.events("connect")


# --------------------------------------------------------------------------- middleware


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_middleware_rejection(mode: str, serve_hub: Any, sio: ClientFactory) -> None:
    hub = echo_hub()

    async def check(socket: Any, auth: dict[str, Any]) -> None:
        if auth.get("token") != "good":
            raise ConnectionRefused("not authorized", {"reason": "bad token", "retry": False})
        socket.data["user"] = "alice"

    hub.use(check)

    @hub.on("whoami")
    async def whoami(socket: Any) -> str:
        return str(socket.data["user"])

    served = await serve_hub(hub)
    bad = await sio(served.url, auth={"token": "nope"}, **TRANSPORTS[mode])
    (err,) = await bad.wait("connect_error")
    assert err["message"] == "not authorized"
    assert err["data"] == {"reason": "bad token", "retry": False}
    assert not bad.events("connect")
    assert served.hub.sockets == {}

    good = await sio(served.url, auth={"token": "good"}, **TRANSPORTS[mode])
    await good.wait("connect")
    assert await good.emit_ack("whoami") == ["alice"]


# --------------------------------------------------------------------------- reconnection


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_reconnects_after_server_restart(
    mode: str, serve_hub: Any, sio: ClientFactory
) -> None:
    # Short heartbeats: over polling, a client whose next GET is in flight while the
    # server stops may only learn of it from the missing pings (as with any server).
    served = await serve_hub(echo_hub(ping_interval=0.5, ping_timeout=0.5))
    client = await sio(
        served.url,
        reconnectionDelay=50,
        reconnectionDelayMax=200,
        **TRANSPORTS[mode],
    )
    (first,) = await client.wait("connect")
    assert await client.emit_ack("echo", "before") == ["before"]

    await served.stop()
    await client.wait("disconnect")
    await served.start()  # same hub, same port

    connects = await client.wait("connect", 2)
    await client.wait("reconnect")
    assert connects[1]["id"] != first["id"]  # no recovery configured: a new session
    assert await client.emit_ack("echo", "after") == ["after"]
    assert set(served.hub.sockets) == {connects[1]["id"]}


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_connection_state_recovery(mode: str, serve_hub: Any, sio: ClientFactory) -> None:
    served = await serve_hub(echo_hub(recovery=Recovery()))
    hub = served.hub
    client = await sio(
        served.url, reconnectionDelay=50, reconnectionDelayMax=200, **TRANSPORTS[mode]
    )
    (first,) = await client.wait("connect")
    assert first["recovered"] is False
    assert await client.emit_ack("join", "blue") == ["joined blue"]
    hub.sockets[first["id"]].data["name"] = "kept"

    # One broadcast before the drop gives the client an offset to recover from.
    await hub.emit("tick", 0)
    await client.wait_event("tick")

    # Drop the transport, then broadcast while the client is away. The broadcasts happen
    # in the same loop turn as the drop, so the client cannot be back yet.
    hub.sockets[first["id"]].session.close("transport close")
    await hub.emit("tick", 1)
    await hub.to("blue").emit("room-tick", 2)
    await hub.to("green").emit("room-tick", 3)  # not the client's room: not replayed
    await hub.except_("blue").emit("tick", 4)  # excluded: not replayed

    (gone,) = await client.wait("disconnect")
    # WebSocket: the close frame; polling: the next request finds no session.
    assert gone["reason"] in {"transport close", "transport error"}
    connects = await client.wait("connect", 2)
    assert connects[1]["recovered"] is True
    assert connects[1]["id"] == first["id"]

    await hub.emit("marker")
    await client.wait_event("marker")
    # With recovery on, every broadcast carries its offset as the last argument.
    assert [args[0] for args in client.received("tick")] == [0, 1]
    assert [args[0] for args in client.received("room-tick")] == [2]

    socket = hub.sockets[first["id"]]
    assert socket.recovered is True
    assert "blue" in socket.rooms
    assert socket.data["name"] == "kept"
    assert await client.emit_ack("echo", "back") == ["back"]


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_server_disconnect_with_close_reaches_the_client(
    mode: str, serve_hub: Any, sio: ClientFactory
) -> None:
    # socket.disconnect(close=True) sends a DISCONNECT then closes the session: the client
    # must see "io server disconnect" (and so not reconnect), whatever the transport.
    served = await serve_hub(echo_hub())
    client = await sio(
        served.url, reconnectionDelay=50, reconnectionDelayMax=200, **TRANSPORTS[mode]
    )
    (connected,) = await client.wait("connect")
    await served.hub.sockets[connected["id"]].disconnect(close=True)
    (gone,) = await client.wait("disconnect")
    assert gone["reason"] == "io server disconnect"
    state = await client.state()
    assert state["connected"] is False
    assert len(client.events("connect")) == 1


# --------------------------------------------------------------------------- bad input


def _fetch(
    url: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def fetch(
    url: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request in a thread (urllib), bounded by ``WAIT``."""
    return await asyncio.to_thread(_fetch, url, method, body)


async def raw_post(port: int, target: str, body: bytes) -> tuple[int, bytes]:
    """POST with the head and the body in one write (as browsers and urllib do for small
    heads), so the server reads both in one chunk; returns (status, body)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        async with asyncio.timeout(WAIT):
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            content = await reader.readexactly(length)
        return int(status_line.split()[1]), content
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _open_sid(body: bytes) -> str:
    assert body.startswith(b"0"), body
    sid: str = json.loads(body[1:].split(b"\x1e")[0])["sid"]
    return sid


async def test_malformed_packets_close_only_their_session(
    serve_hub: Any, sio: ClientFactory
) -> None:
    served = await serve_hub(echo_hub())
    good = await sio(served.url, transports=["websocket"])
    await good.wait("connect")
    ws_url = f"ws://{HOST}:{served.port}/socket.io/?EIO=4&transport=websocket"

    for garbage in ['42{"not":"an array"}', "4abc", "49", '42["connect"]', "4-1"]:
        async with tether.connect(ws_url, compression=None) as ws:
            opening = await asyncio.wait_for(ws.recv(), WAIT)
            assert isinstance(opening, str) and opening.startswith("0")
            await ws.send("40")
            connected = await asyncio.wait_for(ws.recv(), WAIT)
            assert isinstance(connected, str) and connected.startswith("40")
            await ws.send(garbage)
            with pytest.raises(tether.ConnectionClosed):
                async with asyncio.timeout(WAIT):
                    while True:
                        await ws.recv()
        assert await good.emit_ack("echo", garbage) == [garbage]

    # The same over polling: the POST is accepted, the session is closed.
    status, _, body = await fetch(f"{served.url}/socket.io/?EIO=4&transport=polling")
    sid = _open_sid(body)
    poll_url = f"{served.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    status, _, _ = await fetch(poll_url, "POST", b"40")
    assert status == 200
    await fetch(poll_url)  # the CONNECT reply
    status, _, _ = await fetch(poll_url, "POST", b'42{"bad":1}')
    status, _, body = await fetch(poll_url)
    assert (status, body) in {(200, b"1"), (400, b'{"code":1,"message":"Session ID unknown"}')}
    status, _, _ = await fetch(poll_url)
    assert status == 400
    assert sid not in served.hub.engine.sessions
    assert await good.emit_ack("echo", "still here") == ["still here"]


async def test_oversize_polling_post_is_413(serve_hub: Any) -> None:
    served = await serve_hub(echo_hub(max_payload=1000))
    status, _, body = await fetch(f"{served.url}/socket.io/?EIO=4&transport=polling")
    sid = _open_sid(body)
    poll_url = f"{served.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    status, _, _ = await fetch(poll_url, "POST", b"4" + b"x" * 2000)
    assert status == 413
    # the session is gone
    status, _, _ = await fetch(poll_url)
    assert status == 400
    # far beyond the HTTP layer's own body limit too
    status, _, body = await fetch(f"{served.url}/socket.io/?EIO=4&transport=polling")
    sid = _open_sid(body)
    poll_url = f"{served.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    status, _ = await raw_post(served.port, poll_url.partition(str(served.port))[2], b"4" * 200_000)
    assert status == 413


async def test_large_polling_post_under_max_payload_is_accepted(serve_hub: Any) -> None:
    # max_payload is 1 MB: a 100 kB event in one POST is legal (the official client sends
    # such bodies). The HTTP layer must not take the body for an oversized head.
    served = await serve_hub(echo_hub())
    hub = served.hub
    status, _, body = await fetch(f"{served.url}/socket.io/?EIO=4&transport=polling")
    sid = _open_sid(body)
    poll_url = f"{served.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await fetch(poll_url, "POST", b"40"))[0] == 200
    status, _, body = await fetch(poll_url)
    assert body.startswith(b"40")
    got: list[int] = []

    @hub.on("big")
    async def big(socket: Any, text: str) -> None:
        got.append(len(text))

    text = "x" * 100_000
    target = poll_url.partition(str(served.port))[2]
    status, body = await raw_post(served.port, target, b'42["big","' + text.encode() + b'"]')
    assert (status, body) == (200, b"ok")
    assert sid in hub.engine.sessions
    async with asyncio.timeout(WAIT):
        while not got:
            await asyncio.sleep(0.005)
    assert got == [100_000]


async def test_unknown_sid_is_400_with_json(serve_hub: Any) -> None:
    served = await serve_hub(echo_hub())
    for method, body in (("GET", None), ("POST", b"40")):
        status, headers, content = await fetch(
            f"{served.url}/socket.io/?EIO=4&transport=polling&sid=nope", method, body
        )
        assert status == 400
        assert headers["Content-Type"] == "application/json"
        assert json.loads(content) == {"code": 1, "message": "Session ID unknown"}


async def test_oversize_websocket_message_closes_1009(serve_hub: Any, sio: ClientFactory) -> None:
    served = await serve_hub(echo_hub(max_payload=1000))
    good = await sio(served.url, transports=["websocket"])
    await good.wait("connect")
    ws_url = f"ws://{HOST}:{served.port}/socket.io/?EIO=4&transport=websocket"
    async with tether.connect(ws_url, compression=None) as ws:
        await asyncio.wait_for(ws.recv(), WAIT)
        await ws.send("40")
        await asyncio.wait_for(ws.recv(), WAIT)
        await ws.send('42["echo","' + "x" * 2000 + '"]')
        with pytest.raises(tether.ConnectionClosed) as info:
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
    assert info.value.code == 1009
    assert await good.emit_ack("echo", "ok") == ["ok"]
