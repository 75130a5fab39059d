"""``hub.instrument()``: the Socket.IO Admin UI protocol, spoken to a real hub by real
clients (tether's own Python client on the admin namespace and on the others, over
127.0.0.1). The messages are those of ``@socket.io/admin-ui`` 0.5; the dashboard itself
is driven in ``tests/e2e/test_admin_ui.py``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tether.broker import MemoryBroker, MemoryCluster
from tether.exceptions import ConnectError, InvalidOption, InvalidState
from tether.realtime import Client, Hub

from .serving import wait_until

AUTH = {"type": "basic", "username": "admin", "password": "s3cret"}
SOCKET_KEYS = {"id", "clientId", "transport", "nsp", "data", "handshake", "rooms"}
HANDSHAKE_KEYS = {"address", "headers", "query", "issued", "secure", "time", "url", "xdomain"}
SERVER_EVENTS = (
    "session",
    "config",
    "server_stats",
    "all_sockets",
    "socket_connected",
    "socket_updated",
    "socket_disconnected",
    "room_joined",
    "room_left",
    "event_received",
    "event_sent",
)


class Dashboard:
    """A client of the admin namespace that records what the hub tells it."""

    def __init__(self) -> None:
        self.client = Client(reconnection=False)
        self.events: list[tuple[str, list[Any]]] = []
        for name in SERVER_EVENTS:
            self.client.on(name, self._recorder(name), namespace="/admin")

    def _recorder(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.events.append((name, list(args)))

        return record

    async def connect(self, url: str, auth: dict[str, Any] | None = None, **kw: Any) -> None:
        await self.client.connect(url, namespaces=["/admin"], auth=auth, **kw)

    def of(self, name: str) -> list[list[Any]]:
        return [args for event, args in self.events if event == name]

    def first(self, name: str) -> list[Any]:
        return self.of(name)[0]

    async def wait_for(self, name: str, match: Any = None, timeout: float = 10.0) -> list[Any]:
        def found() -> list[Any] | None:
            for args in self.of(name):
                if match is None or match(args):
                    return args
            return None

        await wait_until(lambda: found() is not None, timeout)
        result = found()
        assert result is not None
        return result

    async def emit(self, event: str, *args: Any) -> None:
        await self.client.socket("/admin").emit(event, *args)

    async def close(self) -> None:
        await self.client.disconnect()


@contextlib.asynccontextmanager
async def serving(hub: Hub) -> AsyncIterator[str]:
    async with hub.serve("127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}"


def chat_hub(**instrument: Any) -> Hub:
    hub = Hub()
    options: dict[str, Any] = {"auth": False, "stats_interval": 0.2, "server_id": "node-a"}
    options.update(instrument)
    hub.instrument(**options)

    @hub.on("join")
    async def join(socket: Any, room: str) -> str:
        await socket.join(room)
        return "joined"

    @hub.on("leave")
    async def leave(socket: Any, room: str) -> str:
        socket.leave(room)
        return "left"

    @hub.on("shout")
    async def shout(socket: Any, room: str, text: str) -> None:
        await hub.to(room).emit("said", text)

    @hub.on("whisper")
    async def whisper(socket: Any, text: str) -> None:
        await socket.emit("echo", text)

    return hub


async def user(url: str, **connect: Any) -> Client:
    client = Client(reconnection=False)
    client.on("*", lambda *args: None)
    await client.connect(url, **connect)
    return client


async def test_a_dashboard_gets_the_config_every_socket_and_the_stats() -> None:
    hub = chat_hub()
    async with serving(hub) as url:
        alice = await user(url, transports=["websocket"], headers={"Authorization": "Bearer x"})
        assert await alice.emit_with_ack("join", "garden") == "joined"
        board = Dashboard()
        await board.connect(url, transports=["polling"])
        try:
            config = (await board.wait_for("config"))[0]
            assert config == {
                "supportedFeatures": [
                    "EMIT",
                    "JOIN",
                    "LEAVE",
                    "DISCONNECT",
                    "MJOIN",
                    "MLEAVE",
                    "MDISCONNECT",
                    "AGGREGATED_EVENTS",
                    "ALL_EVENTS",
                ]
            }
            (sockets,) = await board.wait_for("all_sockets")
            by_id = {s["id"]: s for s in sockets}
            mine = board.client.socket("/admin").sid
            assert set(by_id) == {alice.sid, mine}
            a = by_id[alice.sid]
            assert set(a) == SOCKET_KEYS
            assert set(a["handshake"]) == HANDSHAKE_KEYS
            assert a["nsp"] == "/"
            assert a["transport"] == "websocket"
            assert a["rooms"] == sorted([alice.sid, "garden"])
            assert a["data"] == {}
            assert a["handshake"]["address"] == "127.0.0.1"
            assert a["handshake"]["headers"]["authorization"] == "[redacted]"
            assert a["handshake"]["url"].startswith("/socket.io/")
            assert a["handshake"]["query"]["EIO"] == "4"
            assert isinstance(a["handshake"]["issued"], int)
            assert len(a["clientId"]) == 12
            session_sid = hub.sockets[alice.sid].client.session.sid
            assert a["clientId"] not in session_sid  # a digest, never the session id
            assert by_id[mine]["nsp"] == "/admin"
            assert by_id[mine]["transport"] == "polling"
            assert by_id[mine]["clientId"] != a["clientId"]

            # The first stats come at once, then every stats_interval with the aggregates.
            first = board.first("server_stats")[0]
            assert first["serverId"] == "node-a"
            assert first["clientsCount"] == 2
            assert first["pollingClientsCount"] == 1
            counts = {n["name"]: n["socketsCount"] for n in first["namespaces"]}
            assert counts == {"/": 1, "/admin": 1}
            assert isinstance(first["pid"], int) and first["hostname"]
            aggregated = await board.wait_for(
                "server_stats",
                lambda args: any(e["type"] == "packetsIn" for e in args[0]["aggregatedEvents"]),
            )
            kinds = {e["type"] for e in aggregated[0]["aggregatedEvents"]}
            assert {"packetsIn", "packetsOut", "bytesIn", "bytesOut"} <= kinds
            for entry in aggregated[0]["aggregatedEvents"]:
                assert entry["count"] > 0
                assert entry["timestamp"] % 1000 == 0
        finally:
            await board.close()
            await alice.disconnect()


async def test_connections_rooms_and_events_are_reported_as_they_happen() -> None:
    hub = chat_hub()
    async with serving(hub) as url:
        board = Dashboard()
        await board.connect(url)
        await board.wait_for("all_sockets")
        bob = await user(url, transports=["polling"])
        try:
            connected = await board.wait_for("socket_connected", lambda a: a[0]["id"] == bob.sid)
            assert connected[0]["nsp"] == "/"
            assert connected[0]["rooms"] == [bob.sid]
            assert connected[1].endswith("Z")  # an ISO timestamp, as JSON dates are

            assert await bob.emit_with_ack("join", "garden") == "joined"
            joined = await board.wait_for("room_joined", lambda a: a[1] == "garden")
            assert joined[:3] == ["/", "garden", bob.sid]
            # Joining a room again is no change: no second room_joined.
            assert await bob.emit_with_ack("join", "garden") == "joined"

            await bob.emit("shout", "garden", "hello")
            received = await board.wait_for("event_received", lambda a: a[2][0] == "shout")
            assert received[:3] == ["/", bob.sid, ["shout", "garden", "hello"]]
            sent = await board.wait_for("event_sent", lambda a: a[2][0] == "said")
            assert sent[:3] == ["/", bob.sid, ["said", "hello"]]
            await bob.emit("whisper", "psst")
            sent = await board.wait_for("event_sent", lambda a: a[2][0] == "echo")
            assert sent[:3] == ["/", bob.sid, ["echo", "psst"]]

            assert await bob.emit_with_ack("leave", "garden") == "left"
            left = await board.wait_for("room_left", lambda a: a[1] == "garden")
            assert left[:3] == ["/", "garden", bob.sid]
            assert len([a for a in board.of("room_joined") if a[1] == "garden"]) == 1
            # The admin namespace's own traffic is not reported as events.
            assert all(a[0] != "/admin" for a in board.of("event_sent"))
            assert all(a[0] != "/admin" for a in board.of("event_received"))

            sid = bob.sid
            await bob.disconnect()
            gone = await board.wait_for("socket_disconnected", lambda a: a[1] == sid)
            assert gone[:3] == ["/", sid, "client namespace disconnect"]
            # Its own room goes with it (after the disconnect, as socket.io reports it).
            await board.wait_for("room_left", lambda a: a[1] == sid)
            names = [e for e, args in board.events if sid in args[:3]]
            assert names.index("socket_disconnected") < len(names) - 1
        finally:
            await board.close()


async def test_an_upgrade_is_reported_as_socket_updated() -> None:
    hub = chat_hub()
    async with serving(hub) as url:
        board = Dashboard()
        await board.connect(url, transports=["websocket"])
        carol = await user(url)  # polling first, then the upgrade
        try:
            await wait_until(lambda: carol.transport == "websocket")
            update = await board.wait_for("socket_updated", lambda a: a[0]["id"] == carol.sid)
            assert update[0] == {"id": carol.sid, "nsp": "/", "transport": "websocket"}
        finally:
            await carol.disconnect()
            await board.close()


async def test_the_commands_act_on_the_target_sockets() -> None:
    hub = chat_hub()
    async with serving(hub) as url:
        board = Dashboard()
        await board.connect(url)
        dave = await user(url)
        erin = await user(url)
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        erin.on("disconnect", lambda reason: lost.done() or lost.set_result(reason))
        got: list[Any] = []
        dave.on("news", lambda *args: got.append(args))
        try:
            # join with a target (one socket), then emit to the room.
            await board.emit("join", "/", "newsroom", dave.sid)
            await wait_until(lambda: "newsroom" in hub.sockets[dave.sid].rooms)
            assert "newsroom" not in hub.sockets[erin.sid].rooms
            await board.emit("emit", "/", "newsroom", "news", "extra")
            await wait_until(lambda: got == [("extra",)])
            # leave without a target: every socket of the namespace.
            await board.emit("leave", "/", "newsroom")
            await wait_until(lambda: "newsroom" not in hub.sockets[dave.sid].rooms)
            # Junk is ignored, and so are unknown namespaces.
            await board.emit("join", 42, None)
            await board.emit("_disconnect", "/nowhere", False, erin.sid)
            await board.emit("_disconnect", "/", "yes", erin.sid)
            # _disconnect with a target: that socket only.
            await board.emit("_disconnect", "/", False, erin.sid)
            assert await asyncio.wait_for(lost, 10) == "io server disconnect"
            assert dave.connected
            assert set(hub.sockets) == {dave.sid}
        finally:
            await dave.disconnect()
            await erin.disconnect()
            await board.close()


async def test_readonly_offers_no_command_and_obeys_none() -> None:
    hub = chat_hub(readonly=True)
    hub.of("/admin").on("ping")(lambda socket: "pong")
    async with serving(hub) as url:
        board = Dashboard()
        await board.connect(url)
        frank = await user(url)
        try:
            config = (await board.wait_for("config"))[0]
            assert config["supportedFeatures"] == ["AGGREGATED_EVENTS", "ALL_EVENTS"]
            await board.emit("_disconnect", "/", True, frank.sid)
            await board.emit("join", "/", "x", frank.sid)
            await board.emit("whatever")
            # Packets are dispatched in order: once "ping" is answered, the commands
            # above were dropped (no handler in readonly mode), not run.
            assert await board.client.socket("/admin").emit_with_ack("ping", timeout=5) == "pong"
            assert frank.connected
            assert hub.sockets[frank.sid].rooms == {frank.sid}
        finally:
            await frank.disconnect()
            await board.close()


async def test_production_mode_sends_aggregates_only() -> None:
    hub = chat_hub(mode="production")
    async with serving(hub) as url:
        board = Dashboard()
        await board.connect(url)
        gina = await user(url)
        try:
            config = (await board.wait_for("config"))[0]
            assert "ALL_EVENTS" not in config["supportedFeatures"]
            assert "AGGREGATED_EVENTS" in config["supportedFeatures"]
            await gina.emit("shout", "lobby", "hi")
            await board.wait_for(
                "server_stats",
                lambda a: any(e["type"] == "rawConnection" for e in a[0]["aggregatedEvents"]),
            )
            stats = await board.wait_for("server_stats", lambda a: a[0]["clientsCount"] == 2)
            assert {n["name"]: n["socketsCount"] for n in stats[0]["namespaces"]}["/"] == 1
            await gina.disconnect()
            gone = await board.wait_for(
                "server_stats",
                lambda a: any(e["type"] == "rawDisconnection" for e in a[0]["aggregatedEvents"]),
            )
            reasons = {
                e["subType"] for e in gone[0]["aggregatedEvents"] if e["type"] == "rawDisconnection"
            }
            assert reasons == {"transport close"}
            per_socket = {"all_sockets", "socket_connected", "event_received", "event_sent"}
            assert not per_socket & {event for event, _ in board.events}
        finally:
            await board.close()


async def test_basic_auth_refuses_wrong_credentials_and_honours_the_session() -> None:
    hub = chat_hub(auth=AUTH)
    async with serving(hub) as url:
        for wrong in ({"username": "admin", "password": "nope"}, {"password": "s3cret"}, None):
            board = Dashboard()
            with pytest.raises(ConnectError) as refused:
                await board.connect(url, auth=wrong)
            assert "invalid credentials" in str(refused.value)
        board = Dashboard()
        await board.connect(url, auth={"username": "admin", "password": "s3cret"})
        (session_id,) = await board.wait_for("session")
        await board.wait_for("config")
        await board.close()
        # The dashboard reconnects with the session id alone.
        again = Dashboard()
        await again.connect(url, auth={"sessionId": session_id})
        await again.wait_for("config")
        assert again.of("session") == []
        await again.close()
        forged = Dashboard()
        with pytest.raises(ConnectError):
            await forged.connect(url, auth={"sessionId": session_id + "x"})


@pytest.mark.skipif(importlib.util.find_spec("bcrypt") is None, reason="bcrypt not installed")
async def test_a_bcrypt_hash_is_checked_with_bcrypt() -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"hunter2", bcrypt.gensalt(rounds=4)).decode()
    hub = chat_hub(auth={"type": "basic", "username": "admin", "password": hashed})
    async with serving(hub) as url:
        board = Dashboard()
        with pytest.raises(ConnectError):
            await board.connect(url, auth={"username": "admin", "password": hashed})
        board = Dashboard()
        await board.connect(url, auth={"username": "admin", "password": "hunter2"})
        await board.wait_for("session")
        await board.close()


def test_a_bcrypt_hash_without_bcrypt_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # as if it were not installed
    hashed = "$2b$04$" + "a" * 53
    with pytest.raises(ImportError, match="pip install bcrypt"):
        Hub().instrument(auth={"type": "basic", "username": "u", "password": hashed})


def test_options_are_checked() -> None:
    hub = Hub()
    with pytest.raises(TypeError):
        hub.instrument()  # type: ignore[call-arg]  # auth must be given, even as False
    for bad in (
        {"auth": {"type": "digest", "username": "u", "password": "p"}},
        {"auth": {"type": "basic", "username": "u"}},
        {"auth": True},
        {"auth": False, "mode": "verbose"},
        {"auth": False, "namespace": "/"},
        {"auth": False, "stats_interval": 0},
    ):
        with pytest.raises(InvalidOption):
            hub.instrument(**bad)
    admin = hub.instrument(auth=False, namespace="ops")
    assert admin.namespace.name == "/ops"
    assert admin.server_id.endswith(f"#{os.getpid()}")
    with pytest.raises(InvalidState):
        hub.instrument(auth=False)


async def test_without_instrument_nothing_is_wired() -> None:
    hub = Hub()
    assert hub._admin is None
    from tether.realtime.connection import Connection

    assert hub._connection_class is Connection


async def test_two_nodes_report_to_one_dashboard_and_obey_its_commands() -> None:
    cluster = MemoryCluster()
    hubs = [Hub(broker=MemoryBroker(cluster=cluster)) for _ in range(2)]
    for n, hub in enumerate(hubs):
        hub.instrument(auth=False, stats_interval=0.2, server_id=f"node-{n}")
    async with serving(hubs[0]) as url_a, serving(hubs[1]) as url_b:
        board = Dashboard()
        await board.connect(url_a)
        far = await user(url_b)  # a socket of node B, seen from a dashboard on node A
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        far.on("disconnect", lambda reason: lost.done() or lost.set_result(reason))
        try:
            await board.wait_for("server_stats", lambda a: a[0]["serverId"] == "node-1")
            await board.wait_for("socket_connected", lambda a: a[0]["id"] == far.sid)
            # all_sockets asks the other nodes too.
            late = Dashboard()
            await late.connect(url_a)
            (sockets,) = await late.wait_for("all_sockets")
            await late.close()
            assert far.sid in {s["id"] for s in sockets}
            # A command on node A acts on node B.
            await board.emit("join", "/", "far-room", far.sid)
            await board.wait_for("room_joined", lambda a: a[1:3] == ["far-room", far.sid])
            assert "far-room" in hubs[1].sockets[far.sid].rooms
            await board.emit("_disconnect", "/", True, far.sid)
            assert await asyncio.wait_for(lost, 10) == "io server disconnect"
        finally:
            await far.disconnect()
            await board.close()
