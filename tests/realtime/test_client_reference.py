"""tether.realtime.client.Client against two Socket.IO v5 servers.

Every test that talks to a server runs twice (the ``server_kind`` parameter):

- ``node``: the official Node ``socket.io`` server, ``tests/node/sio_reference_server.js``;
- ``tether``: tether's own :class:`~tether.realtime.Hub`, ``hub_reference_server.py`` next
  to this file, a twin of the Node script (same options, events and ``READY`` line).

The server runs as a child process on 127.0.0.1 (see the scripts' headers for the events
they answer). Connection losses are made for real: the server process is killed and
restarted on the same port, the TCP connections are cut by a relay we control, or the relay
stops forwarding so that heartbeats stop. Every wait is bounded; no assertion depends on
how long something took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import tether
from tether.realtime.client import (
    AckTimeout,
    BufferFull,
    Client,
    ConnectError,
)

HOST = "127.0.0.1"
WAIT = 15.0  # the bound on any single wait; never reached when things work
NODE_SERVER = "sio_reference_server.js"
SERVER_KINDS = ("node", "tether")


# --------------------------------------------------------------------------- helpers


class Recorder:
    """Collects (name, args) of client events; wait (bounded) for one to show up."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()

    def handler(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events.append((name, args))
            self._changed.set()

        return record

    def watch(self, client: Client, *names: str, namespace: str = "/") -> Recorder:
        for name in names:
            client.on(name, self.handler(name), namespace=namespace)
        return self

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.events if n == name]

    async def wait_for(self, name: str, count: int = 1) -> list[tuple[Any, ...]]:
        async with asyncio.timeout(WAIT):
            while len(self.named(name)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.named(name)


class Gate:
    """A reconnection sleep the test controls: records each delay, sleeps a little, and
    holds the next attempt while closed."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.opened = asyncio.Event()
        self.opened.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, 0.05))
        await self.opened.wait()


class Relay:
    """A TCP relay in front of the server: ``cut()`` drops every current connection,
    ``stall()`` stops forwarding on them (new connections are forwarded normally)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self._stalled: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stalled: asyncio.Event
    ) -> None:
        try:
            while data := await reader.read(65536):
                if stalled.is_set():
                    continue  # swallowed: the peer sees silence, not a close
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not stalled.is_set():
                writer.close()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            c_writer.close()
            return
        stalled = asyncio.Event()
        self._pairs.append((c_writer, s_writer, stalled))
        for reader, writer in ((c_reader, s_writer), (s_reader, c_writer)):
            task = asyncio.ensure_future(self._pipe(reader, writer, stalled))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        for c_writer, s_writer, _ in self._pairs:
            for writer in (c_writer, s_writer):
                writer.transport.abort()
        self._pairs.clear()

    def stall(self) -> None:
        for pair in self._pairs:
            pair[2].set()
        self._stalled += self._pairs
        self._pairs = []

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._pairs += self._stalled
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Which reference server the test runs against: ``"node"`` or ``"tether"``."""
    return str(request.param)


@pytest.fixture
def sio(server_kind: str, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``handle = sio("--recovery", port=P)``: start the reference server of
    ``server_kind`` (bounded wait for its READY line); all are stopped at the end."""
    if server_kind == "node":
        node_server = request.getfixturevalue("node_server")

        def start(*args: object, port: int = 0) -> Any:
            return node_server(NODE_SERVER, "--port", port, *args)

        return start
    hub_server = request.getfixturevalue("hub_server")

    def start_hub(*args: object, port: int = 0) -> Any:
        return hub_server("--port", port, *args)

    return start_hub


@pytest.fixture
async def relay() -> AsyncIterator[Callable[[int], Any]]:
    relays: list[Relay] = []

    async def start(port: int) -> Relay:
        r = await Relay(port).start()
        relays.append(r)
        return r

    yield start
    for r in relays:
        await r.close()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Client]]:
    """Factory of clients with fast reconnection; all are disconnected at the end."""
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("reconnection_delay", 0.05)
        kwargs.setdefault("reconnection_delay_max", 0.3)
        client = Client(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 5)


def url(port: int) -> str:
    return f"http://{HOST}:{port}"


async def until(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) until ``predicate()`` holds."""
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}


@pytest.fixture(params=list(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


# --------------------------------------------------------------------------- basics


async def test_events_and_acks_both_ways(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    client = clients()
    echoes: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    @client.on("echo")
    def on_echo(*args: Any) -> None:
        echoes.put_nowait(args)

    @client.on("question")
    async def on_question(a: int, b: int) -> Any:
        return {"sum": a + b}

    await client.connect(url(server.port), transports=transports)
    assert client.connected and client.sid

    # client -> server with an ack (several values come back as a tuple)
    assert await client.emit_with_ack("echo", 1, "two", timeout=WAIT) == (1, "two")
    assert await client.emit_with_ack("echo", "one", timeout=WAIT) == "one"
    assert await client.emit_with_ack("echo", timeout=WAIT) is None
    # client -> server -> client without an ack
    await client.emit("echo", "hello", [1, 2])
    assert await asyncio.wait_for(echoes.get(), WAIT) == ("hello", [1, 2])
    # callback-style ack
    got: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
    await client.emit("echo", "cb", callback=lambda *a: got.set_result(a))
    assert await asyncio.wait_for(got, WAIT) == ("cb",)
    # server -> client with an ack: the handler's return value
    assert await client.emit_with_ack("ask", 2, 3, timeout=WAIT) == {"sum": 5}


async def test_binary_anywhere(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    client = clients()
    await client.connect(url(server.port), transports=transports)
    payload = {"a": [b"\x00\x01", {"deep": b"\xff" * 1000}], "text": "é"}
    reply = await client.emit_with_ack("echo", b"raw", payload, bytearray(b"ba"), timeout=WAIT)
    assert reply == (b"raw", payload, b"ba")


async def test_namespaces_and_socket_objects(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    chat = client.socket("/chat")
    rec = Recorder().watch(client, "connect").watch(client, "connect", namespace="/chat")
    chat_echo: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    chat.on("echo", lambda *a: chat_echo.put_nowait(a))
    await client.connect(url(server.port), namespaces=["/", "/chat"])
    await rec.wait_for("connect", 2)
    main_info = await client.emit_with_ack("info", timeout=WAIT)
    chat_info = await chat.emit_with_ack("info", timeout=WAIT)
    assert main_info["nsp"] == "/" and chat_info["nsp"] == "/chat"
    assert chat_info["id"] == chat.sid != client.sid
    await client.emit("echo", "to chat", namespace="/chat")
    assert await asyncio.wait_for(chat_echo.get(), WAIT) == ("to chat",)


async def test_default_namespaces_are_those_with_handlers(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio()
    client = clients()
    client.on("echo", lambda *a: None, namespace="/chat")
    await client.connect(url(server.port))
    assert client.socket("/chat").connected
    assert not client.socket("/").connected


async def test_catch_all(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    seen: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    specific: list[Any] = []
    client.on("*", lambda event, *args: seen.put_nowait((event, *args)))
    client.on("known", lambda *args: specific.append(args))
    await client.connect(url(server.port))
    await client.emit_with_ack("broadcast", "anything", 1, b"x", timeout=WAIT)
    await client.emit_with_ack("broadcast", "known", 2, timeout=WAIT)
    await client.emit_with_ack("broadcast", "other", timeout=WAIT)
    assert await asyncio.wait_for(seen.get(), WAIT) == ("anything", 1, b"x")
    assert await asyncio.wait_for(seen.get(), WAIT) == ("other",)
    assert specific == [(2,)]


async def test_transport_in_use(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    client = clients()
    await client.connect(url(server.port), transports=transports)
    if transports == ["polling", "websocket"]:
        await until(lambda: client.transport == "websocket")
        assert await client.emit_with_ack("upgrade-count", timeout=WAIT) >= 1
    else:
        assert client.transport == transports[0]
    info = await client.emit_with_ack("info", timeout=WAIT)
    assert info["transport"] == client.transport


async def test_server_limited_to_polling_no_upgrade(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio("--transports", "polling")
    client = clients()
    await client.connect(url(server.port))
    assert await client.emit_with_ack("echo", "x", timeout=WAIT) == "x"
    assert client.transport == "polling"


async def test_refused_upgrade_stays_on_polling(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio("--refuse-websocket")
    client = clients()
    await client.connect(url(server.port))
    engine = client._engine
    assert engine is not None
    await until(lambda: engine.upgrade_failed)
    assert client.transport == "polling"
    for i in range(5):
        assert await client.emit_with_ack("echo", i, timeout=WAIT) == i
    assert client.connected


async def test_websocket_only_against_refusing_server_fails(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio("--refuse-websocket")
    client = clients()
    with pytest.raises(ConnectError):
        await client.connect(url(server.port), transports=["websocket"])


async def test_polling_posts_respect_max_payload(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio("--max-payload", 2000)
    client = clients()
    await client.connect(url(server.port), transports=["polling"])
    sid = client.sid
    # Queued at once: one POST would exceed maxPayload and the server would close.
    await asyncio.gather(*(client.emit("log", i, "x" * 300) for i in range(30)))
    received = await client.emit_with_ack("received", timeout=WAIT)
    assert [r[0] for r in received] == list(range(30))
    assert client.sid == sid and client.connected


async def test_ack_timeout(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    await client.connect(url(server.port))
    with pytest.raises(AckTimeout):
        # "flaky" does not acknowledge a first delivery.
        await client.emit_with_ack("flaky", "t1", timeout=0.2)
    assert client.connected


async def test_retries_give_at_least_once(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients(retries=3, ack_timeout=0.3)
    await client.connect(url(server.port))
    # The first delivery is not acknowledged; the retry is.
    assert await client.emit_with_ack("flaky", "r1", timeout=WAIT) == 2


async def test_binary_in_server_emits_and_client_acks(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    client = clients()
    questions: list[tuple[Any, ...]] = []

    @client.on("question")
    def on_question(*args: Any) -> Any:
        questions.append(args)
        return {"got": args[0], "bytes": bytearray(b"\x00reply")}

    await client.connect(url(server.port), transports=transports)
    # server -> client with binary arguments, client -> server ack with binary
    answer = await client.emit_with_ack("ask", b"\x01\x02", {"k": [b""]}, timeout=WAIT)
    assert questions == [(b"\x01\x02", {"k": [b""]})]
    assert answer == {"got": b"\x01\x02", "bytes": b"\x00reply"}


async def test_unknown_namespace_is_refused(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    rec = Recorder().watch(client, "connect_error", "reconnect_attempt", namespace="/nope")
    with pytest.raises(ConnectError) as info:
        await client.connect(url(server.port), namespaces=["/nope"])
    assert info.value.namespace == "/nope"
    assert info.value.data["message"] == "Invalid namespace"
    await asyncio.wait_for(client.wait(), WAIT)
    assert len(rec.named("connect_error")) == 1
    assert rec.named("reconnect_attempt") == []


async def test_broadcasts_stay_in_their_namespace(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    seen: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
    client.on("*", lambda event, *args: seen.put_nowait(("/", (event, *args))))
    client.on(
        "*", lambda event, *args: seen.put_nowait(("/chat", (event, *args))), namespace="/chat"
    )
    await client.connect(url(server.port), namespaces=["/", "/chat"])
    await client.emit_with_ack("broadcast", "only-chat", 1, namespace="/chat", timeout=WAIT)
    await client.emit_with_ack("broadcast", "only-main", 2, timeout=WAIT)
    assert await asyncio.wait_for(seen.get(), WAIT) == ("/chat", ("only-chat", 1))
    assert await asyncio.wait_for(seen.get(), WAIT) == ("/", ("only-main", 2))
    assert seen.empty()


# --------------------------------------------------------------------------- reconnection


async def test_reconnects_after_server_restart(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    port = server.port
    client = clients()
    rec = Recorder().watch(client, "connect", "disconnect", "reconnect_attempt", "reconnect")
    await client.connect(url(port), transports=transports)
    first_sid = client.sid
    await asyncio.to_thread(server.stop)
    await rec.wait_for("disconnect")
    await rec.wait_for("reconnect_attempt")
    await asyncio.to_thread(sio, port=port)
    await rec.wait_for("reconnect")
    await rec.wait_for("connect", 2)
    assert client.sid != first_sid
    assert await client.emit_with_ack("echo", "back", timeout=WAIT) == "back"
    assert rec.named("disconnect")[0][0] in ("transport close", "transport error")


async def test_reconnects_after_tcp_cut(
    sio: Any, relay: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    r = await relay(server.port)
    client = clients()
    rec = Recorder().watch(client, "connect", "disconnect", "reconnect")
    await client.connect(url(r.port), transports=transports)
    if transports == ["polling", "websocket"]:
        await until(lambda: client.transport == "websocket")
    r.cut()
    await rec.wait_for("reconnect")
    await rec.wait_for("connect", 2)
    assert rec.named("disconnect")[0][0] in ("transport close", "transport error")
    assert await client.emit_with_ack("echo", 1, timeout=WAIT) == 1


async def test_reconnects_when_heartbeats_stop(
    sio: Any, relay: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio("--ping-interval", 300, "--ping-timeout", 300)
    r = await relay(server.port)
    client = clients()
    rec = Recorder().watch(client, "connect", "disconnect", "reconnect")
    await client.connect(url(r.port), transports=transports)
    if transports == ["polling", "websocket"]:
        await until(lambda: client.transport == "websocket")
    r.stall()  # the TCP connection stays open but nothing comes through: no pings
    await rec.wait_for("disconnect")
    assert rec.named("disconnect")[0] == ("ping timeout",)
    await rec.wait_for("connect", 2)
    assert await client.emit_with_ack("echo", 2, timeout=WAIT) == 2


async def test_engine_closed_by_server_reconnects(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    rec = Recorder().watch(client, "connect", "disconnect")
    await client.connect(url(server.port))
    await client.emit("close-engine")
    await rec.wait_for("connect", 2)
    assert rec.named("disconnect")[0] == ("transport close",)


async def test_server_disconnect_does_not_reconnect(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio()
    client = clients()
    rec = Recorder().watch(client, "connect", "disconnect", "reconnect_attempt")
    await client.connect(url(server.port))
    await client.emit("server-disconnect")
    await asyncio.wait_for(client.wait(), WAIT)
    assert rec.named("disconnect") == [("io server disconnect",)]
    assert rec.named("reconnect_attempt") == []
    assert not client.connected


async def test_no_reconnection_after_deliberate_disconnect(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio()
    client = clients()
    rec = Recorder().watch(client, "disconnect", "reconnect_attempt")
    await client.connect(url(server.port))
    await client.disconnect()
    await asyncio.wait_for(client.wait(), WAIT)
    assert rec.named("disconnect") == [("io client disconnect",)]
    assert rec.named("reconnect_attempt") == []


async def test_gives_up_after_reconnection_attempts(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio()
    client = clients(reconnection_attempts=3)
    rec = Recorder().watch(client, "reconnect_attempt", "reconnect_error", "reconnect_failed")
    await client.connect(url(server.port))
    await asyncio.to_thread(server.stop)
    await rec.wait_for("reconnect_failed")
    await asyncio.wait_for(client.wait(), WAIT)
    assert [a[0] for a in rec.named("reconnect_attempt")] == [1, 2, 3]
    assert len(rec.named("reconnect_error")) == 3


async def test_heartbeats_keep_an_idle_connection_open(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    # Pings every 50 ms and a generous pong timeout: 20 heartbeats pass while the
    # client is idle; none may be missed.
    server = sio("--ping-interval", 50, "--ping-timeout", 3000)
    client = clients()
    rec = Recorder().watch(client, "disconnect")
    await client.connect(url(server.port), transports=transports)
    sid = client.sid
    await until(lambda: client.pings_received >= 20)
    assert rec.named("disconnect") == []
    assert client.sid == sid
    assert await client.emit_with_ack("echo", "alive", timeout=WAIT) == "alive"


async def test_every_namespace_reconnects(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    chat = client.socket("/chat")
    rec = Recorder().watch(client, "connect")
    chat_rec = Recorder().watch(client, "connect", namespace="/chat")
    await client.connect(url(server.port), namespaces=["/", "/chat"])
    first = (client.sid, chat.sid)
    await client.emit("close-engine")
    await rec.wait_for("connect", 2)
    await chat_rec.wait_for("connect", 2)
    assert (await chat.emit_with_ack("info", timeout=WAIT))["nsp"] == "/chat"
    assert (client.sid, chat.sid) != first


async def test_server_disconnect_of_one_namespace_keeps_the_others(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio()
    client = clients()
    chat = client.socket("/chat")
    chat_rec = Recorder().watch(client, "disconnect", "connect", namespace="/chat")
    rec = Recorder().watch(client, "disconnect", "reconnect_attempt")
    await client.connect(url(server.port), namespaces=["/", "/chat"])
    await chat.emit("server-disconnect")
    assert await chat_rec.wait_for("disconnect") == [("io server disconnect",)]
    assert not chat.connected
    assert await client.emit_with_ack("echo", "main", timeout=WAIT) == "main"
    assert client.connected and rec.named("disconnect") == []
    assert rec.named("reconnect_attempt") == [] and len(chat_rec.named("connect")) == 1


# --------------------------------------------------------------------------- auth


async def test_auth_function_called_before_every_attempt(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio()
    client = clients()
    rec = Recorder().watch(client, "connect")
    calls = 0

    async def auth() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"token": f"token-{calls}"}

    await client.connect(url(server.port), auth=auth)
    assert (await client.emit_with_ack("info", timeout=WAIT))["auth"] == {"token": "token-1"}
    await client.emit("close-engine")
    await rec.wait_for("connect", 2)
    assert (await client.emit_with_ack("info", timeout=WAIT))["auth"] == {"token": "token-2"}
    log = await client.emit_with_ack("auth-log", timeout=WAIT)
    assert [entry["auth"] for entry in log] == [{"token": "token-1"}, {"token": "token-2"}]


async def test_sync_auth_function_and_dict(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    a, b = clients(), clients()
    await a.connect(url(server.port), auth=lambda: {"user": "a"})
    await b.connect(url(server.port), auth={"user": "b"})
    assert (await a.emit_with_ack("info", timeout=WAIT))["auth"] == {"user": "a"}
    assert (await b.emit_with_ack("info", timeout=WAIT))["auth"] == {"user": "b"}


async def test_rejected_auth_raises_and_does_not_retry(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio("--reject-token", "bad")
    client = clients()
    rec = Recorder().watch(client, "connect_error", "reconnect_attempt")
    with pytest.raises(ConnectError) as info:
        await client.connect(url(server.port), auth={"token": "bad"})
    assert info.value.data["message"] == "not authorized"
    assert info.value.data["data"] == {"reason": "bad token"}
    (error,) = rec.named("connect_error")
    assert error[0]["message"] == "not authorized"
    await asyncio.wait_for(client.wait(), WAIT)
    assert rec.named("reconnect_attempt") == []
    # The server saw exactly one attempt.
    observer = clients()
    await observer.connect(url(server.port), auth={"token": "good"})
    log = await observer.emit_with_ack("auth-log", timeout=WAIT)
    assert [entry["auth"]["token"] for entry in log] == ["bad", "good"]


async def test_rejection_on_reconnect_stops_reconnecting(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio("--reject-token", "expired")
    client = clients()
    rec = Recorder().watch(client, "connect", "connect_error", "reconnect_attempt")
    tokens = iter(["fresh", "expired", "never-used"])
    await client.connect(url(server.port), auth=lambda: {"token": next(tokens)})
    await client.emit("close-engine")
    (error,) = await rec.wait_for("connect_error")
    assert error[0]["message"] == "not authorized"
    await asyncio.wait_for(client.wait(), WAIT)
    assert len(rec.named("connect")) == 1
    assert len(rec.named("reconnect_attempt")) == 1


# --------------------------------------------------------------------------- buffering


async def test_buffered_emits_delivered_after_reconnect(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio()
    client = clients()
    gate = Gate()
    client._sleep = gate
    rec = Recorder().watch(client, "connect", "disconnect")
    await client.connect(url(server.port), transports=transports)
    gate.opened.clear()  # hold the reconnection until the emits are buffered
    await client.emit("close-engine")
    await rec.wait_for("disconnect")
    await client.emit("log", "buffered-1")
    ack = asyncio.ensure_future(client.emit_with_ack("log", "buffered-2", timeout=WAIT))
    await client.emit("log", "dropped", volatile=True)
    await until(lambda: client.socket("/").buffered == 2)
    gate.opened.set()
    await rec.wait_for("connect", 2)
    assert await asyncio.wait_for(ack, WAIT) == 2
    received = await client.emit_with_ack("received", timeout=WAIT)
    assert received == [["buffered-1"], ["buffered-2"]]


async def test_buffer_full_raises(sio: Any, clients: Callable[..., Client]) -> None:
    client = clients(max_buffered=2)
    await client.emit("log", 1)
    await client.emit("log", 2)
    with pytest.raises(BufferFull):
        await client.emit("log", 3)
    # emitted before connect(): delivered once connected
    server = sio()
    await client.connect(url(server.port))
    await until(lambda: client.socket("/").buffered == 0)
    assert await client.emit_with_ack("received", timeout=WAIT) == [[1], [2]]


# --------------------------------------------------------------------------- recovery


async def test_connection_state_recovery(
    sio: Any, clients: Callable[..., Client], transports: list[str]
) -> None:
    server = sio("--recovery")
    controller = clients()
    await controller.connect(url(server.port), transports=["websocket"])
    client = clients()
    gate = Gate()
    client._sleep = gate
    ticks: list[Any] = []
    client.on("tick", lambda n, *rest: ticks.append(n))
    rec = Recorder().watch(client, "connect", "disconnect")
    await client.connect(url(server.port), transports=transports)
    assert client.recovered is False
    await controller.emit_with_ack("broadcast", "tick", 0, timeout=WAIT)
    await until(lambda: ticks == [0])
    gate.opened.clear()
    await client.emit("close-engine")
    await rec.wait_for("disconnect")
    for n in (1, 2, 3):
        await controller.emit_with_ack("broadcast", "tick", n, timeout=WAIT)
    gate.opened.set()
    await rec.wait_for("connect", 2)
    await until(lambda: ticks == [0, 1, 2, 3])
    assert client.recovered is True
    assert client.socket("/").recovered is True
    info = await client.emit_with_ack("info", timeout=WAIT)
    assert info["recovered"] is True


async def test_no_recovery_without_server_support(sio: Any, clients: Callable[..., Client]) -> None:
    server = sio()
    client = clients()
    rec = Recorder().watch(client, "connect")
    await client.connect(url(server.port))
    await client.emit("close-engine")
    await rec.wait_for("connect", 2)
    assert client.recovered is False


async def test_recovery_in_a_namespace_with_binary(
    sio: Any, clients: Callable[..., Client]
) -> None:
    server = sio("--recovery")
    controller = clients()
    await controller.connect(url(server.port), namespaces=["/chat"])
    client = clients()
    gate = Gate()
    client._sleep = gate
    chat = client.socket("/chat")
    blobs: list[tuple[Any, ...]] = []
    chat.on("blob", lambda *args: blobs.append(args))
    rec = Recorder().watch(client, "connect", "disconnect", namespace="/chat")
    await client.connect(url(server.port), namespaces=["/chat"])
    # recovery needs an offset: the last event the client got before the loss
    await controller.emit_with_ack("broadcast", "blob", 0, b"", namespace="/chat", timeout=WAIT)
    await until(lambda: len(blobs) == 1)
    gate.opened.clear()
    await chat.emit("close-engine")
    await rec.wait_for("disconnect")
    for n in (1, 2):
        await controller.emit_with_ack(
            "broadcast", "blob", n, bytes([n]) * 3, namespace="/chat", timeout=WAIT
        )
    gate.opened.set()
    await rec.wait_for("connect", 2)
    await until(lambda: len(blobs) == 3)
    assert chat.recovered is True
    # each replayed event carries its offset (a string) last, after the binary argument
    assert [args[:2] for args in blobs] == [(0, b""), (1, b"\x01" * 3), (2, b"\x02" * 3)]
    assert all(isinstance(args[2], str) for args in blobs)


# --------------------------------------------------------------------------- server parity


def _http(method: str, target: str, body: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        target,
        data=None if body is None else body.encode(),
        method=method,
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_polling_close_packet_waits_for_the_next_get(sio: Any) -> None:
    # The server closes a polling session while no GET is pending (the client is between
    # two polls, or paused during an upgrade): the close packet must wait for the next
    # GET, so that the client sees "transport close" rather than an unknown session.
    server = sio()
    base = f"http://{HOST}:{server.port}/socket.io/?EIO=4&transport=polling"
    status, body = await asyncio.to_thread(_http, "GET", base)
    assert status == 200 and body.startswith("0")
    target = f"{base}&sid={json.loads(body[1:])['sid']}"
    assert await asyncio.to_thread(_http, "POST", target, "40") == (200, "ok")
    status, body = await asyncio.to_thread(_http, "GET", target)
    assert status == 200 and body.startswith("40{")
    assert await asyncio.to_thread(_http, "POST", target, '42["close-engine"]') == (200, "ok")
    status, body = await asyncio.to_thread(_http, "GET", target)
    assert status == 200
    assert body.split("\x1e")[-1] == "1"  # the CLOSE packet (after a NOOP on Node)


async def test_close_during_upgrade_reaches_the_polling_client(sio: Any) -> None:
    # The server closes the session while a WebSocket probe is under way (the client has
    # paused polling): the probe is not the session's transport yet, so the close packet
    # must still come with the next GET.
    server = sio()
    base = f"http://{HOST}:{server.port}/socket.io/?EIO=4&transport=polling"
    status, body = await asyncio.to_thread(_http, "GET", base)
    sid = json.loads(body[1:])["sid"]
    target = f"{base}&sid={sid}"
    assert await asyncio.to_thread(_http, "POST", target, "40") == (200, "ok")
    status, body = await asyncio.to_thread(_http, "GET", target)
    assert status == 200 and body.startswith("40{")
    probe = await tether.connect(
        f"ws://{HOST}:{server.port}/socket.io/?EIO=4&transport=websocket&sid={sid}"
    )
    try:
        await probe.send("2probe")
        assert await asyncio.wait_for(probe.recv(), WAIT) == "3probe"
        assert await asyncio.to_thread(_http, "GET", target) == (200, "6")  # polling paused
        assert await asyncio.to_thread(_http, "POST", target, '42["close-engine"]') == (
            200,
            "ok",
        )
        status, body = await asyncio.to_thread(_http, "GET", target)
        assert status == 200
        assert body.split("\x1e")[-1] == "1"  # the CLOSE packet
    finally:
        await probe.close()


def test_client_under_tether_run(sio: Any) -> None:
    # tether.run is how programs (and the `tether` command) start a loop: uvloop when it
    # is installed. The client must work there on every transport.
    server = sio()

    async def scenario(transports: list[str]) -> Any:
        client = Client()
        try:
            await client.connect(url(server.port), transports=transports)
            return await client.emit_with_ack("echo", transports[0], timeout=WAIT)
        finally:
            await client.disconnect()

    for transports in TRANSPORTS.values():
        assert tether.run(asyncio.wait_for(scenario(transports), WAIT)) == transports[0]


# --------------------------------------------------------------------------- backoff


def expected_delays(
    n: int, seed: int, initial: float, maximum: float, factor: float
) -> Iterator[float]:
    rng = random.Random(seed)
    for attempt in range(n):
        base = min(maximum, initial * 2**attempt)
        base *= 1 + factor * (2 * rng.random() - 1)
        yield max(0.0, min(maximum, base))


def test_backoff_formula_with_seeded_rng() -> None:
    client = Client(
        reconnection_delay=0.5,
        reconnection_delay_max=6.0,
        randomization_factor=0.4,
        rng=random.Random(1234),
    )
    delays = [client.backoff.delay(n) for n in range(12)]
    assert delays == list(expected_delays(12, 1234, 0.5, 6.0, 0.4))
    # the bounds of the formula, for any draw
    for n, d in enumerate(delays):
        base = min(6.0, 0.5 * 2**n)
        assert base * 0.6 <= d <= min(6.0, base * 1.4)


def test_backoff_without_jitter_doubles_up_to_the_max() -> None:
    client = Client(reconnection_delay=1, reconnection_delay_max=10, randomization_factor=0)
    assert [client.backoff.delay(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]


async def test_reconnection_schedule_follows_the_formula(free_port: int) -> None:
    # Nothing listens on free_port: every attempt fails; the sleeps are recorded.
    client = Client(
        reconnection_delay=0.25,
        reconnection_delay_max=2.0,
        randomization_factor=0.5,
        reconnection_attempts=6,
        rng=random.Random(99),
    )
    gate = Gate()
    client._sleep = gate
    rec = Recorder().watch(client, "reconnect_attempt", "reconnect_failed", "connect_error")
    await client.connect(url(free_port), retry=True, wait=False)
    await rec.wait_for("reconnect_failed")
    await asyncio.wait_for(client.wait(), WAIT)
    assert gate.delays == list(expected_delays(6, 99, 0.25, 2.0, 0.5))
    assert [a[0] for a in rec.named("reconnect_attempt")] == [1, 2, 3, 4, 5, 6]


async def test_first_connection_failure_raises_without_retry(free_port: int) -> None:
    client = Client()
    rec = Recorder().watch(client, "connect_error")
    with pytest.raises(ConnectError):
        await client.connect(url(free_port))
    assert len(rec.named("connect_error")) == 1
    await asyncio.wait_for(client.wait(), WAIT)
