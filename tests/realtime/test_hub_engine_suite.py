"""The official Engine.IO v4 and Socket.IO v5 protocol test suites' behaviours, in pytest.

The server is the one ``examples/protocol_suite_server.py`` builds (``/engine.io/`` echoes,
``/socket.io/`` serves ``/`` and ``/custom``; pingInterval 300 ms, pingTimeout 200 ms,
maxPayload 1000000, connectTimeout 1000 ms), wired on one port as its ``main`` does. The
peer speaks raw HTTP (urllib, in a thread) and raw WebSocket (``tether.connect``), so CI
checks the same behaviours without the suites' repositories.

Heartbeats and timeouts are observed, never timed: a ping is something a long poll
returns, a timeout is a session that ends (each wait bounded by ``WAIT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.engine import EngineServer
from tether.protocol.handshake import Request, Response
from tether.realtime import Hub

HOST = "127.0.0.1"
WAIT = 10.0  # the bound on any single wait; never reached when things work
SEP = "\x1e"  # Engine.IO v4 payload separator
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "protocol_suite_server.py"

PING_INTERVAL = 300
PING_TIMEOUT = 200


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("protocol_suite_server", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class SuiteServer:
    engine: EngineServer
    hub: Hub
    port: int

    def url(self, base: str, query: str = "EIO=4&transport=polling") -> str:
        return f"http://{HOST}:{self.port}/{base}/?{query}"

    def ws_url(self, base: str, query: str = "EIO=4&transport=websocket") -> str:
        return f"ws://{HOST}:{self.port}/{base}/?{query}"


@pytest.fixture
async def suite() -> AsyncIterator[SuiteServer]:
    engine, hub = _load_example().build(0)
    assert isinstance(hub, Hub)
    sio_engine = hub.engine

    # The same wiring as the example's main(): one port, routed by path.
    async def http_handler(request: Request) -> Response:
        if request.path.startswith("/socket.io"):
            return await sio_engine.handle_http(request)
        return await engine.handle_http(request)

    def process_request(request: Request) -> Response | None:
        if request.path.startswith("/socket.io"):
            return sio_engine.process_request(request)
        return engine.process_request(request)

    async def handler(ws: tether.WebSocket) -> None:
        assert ws.request is not None
        if ws.request.path.startswith("/socket.io"):
            await sio_engine.handle_websocket(ws)
        else:
            await engine.handle_websocket(ws)

    await hub.start()
    options = engine.serve_options()
    options["http_handler"] = http_handler
    options["process_request"] = process_request
    server = await tether.serve(handler, HOST, 0, **options)
    try:
        yield SuiteServer(engine, hub, server.port)
    finally:
        await engine.close()
        await hub.close()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), WAIT)


# --------------------------------------------------------------------------- HTTP peer


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def _fetch(url: str, method: str, body: bytes | None) -> Reply:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


async def fetch(url: str, method: str = "GET", body: bytes | str | None = None) -> Reply:
    if isinstance(body, str):
        body = body.encode()
    return await asyncio.to_thread(_fetch, url, method, body)


async def polling_session(suite: SuiteServer, base: str) -> tuple[str, str]:
    """Open a polling session; return ``(sid, url with sid)``."""
    reply = await fetch(suite.url(base))
    assert reply.status == 200, reply
    assert reply.text.startswith("0")
    sid: str = json.loads(reply.text[1:])["sid"]
    return sid, suite.url(base, f"EIO=4&transport=polling&sid={sid}")


async def wait_until_polling(suite: SuiteServer, engine: EngineServer, sid: str) -> None:
    """Wait (bounded) until the session's GET is parked on the server."""
    async with asyncio.timeout(WAIT):
        while True:
            session = engine.sessions.get(sid)
            if session is not None and session._poll is not None:
                return
            await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- WebSocket peer


class Peer:
    """A raw Engine.IO WebSocket peer that answers the server's pings by itself."""

    def __init__(self, ws: tether.WebSocket) -> None:
        self.ws = ws
        self.pings = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, *, handshake: bool = True) -> AsyncIterator[Peer]:
        async with tether.connect(url, compression=None, ping_interval=None) as ws:
            peer = cls(ws)
            if handshake:
                opening = await peer.next()
                assert isinstance(opening, str) and opening.startswith("0"), opening
            yield peer

    async def next(self, *, answer_pings: bool = True) -> str | bytes:
        """The next message that is not a ping (answered with a pong)."""
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.ws.recv()
                if message == "2" and answer_pings:
                    self.pings += 1
                    await self.ws.send("3")
                    continue
                return message

    async def send(self, *messages: str | bytes) -> None:
        for message in messages:
            await self.ws.send(message)

    async def closed(self, *, answer_pings: bool = True) -> list[str | bytes]:
        """Wait (bounded) for the server to close; return what arrived before."""
        seen: list[str | bytes] = []
        with pytest.raises(tether.ConnectionClosed):
            while True:
                seen.append(await self.next(answer_pings=answer_pings))
        return seen


@contextlib.asynccontextmanager
async def sio_peer(suite: SuiteServer) -> AsyncIterator[Peer]:
    """An Engine.IO WebSocket peer connected to the main namespace (auth packet read)."""
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        await peer.send("40")
        connect = await peer.next()
        assert isinstance(connect, str) and connect.startswith("40{"), connect
        assert await peer.next() == '42["auth",{}]'
        yield peer


# =========================================================================== Engine.IO


async def test_eio_polling_handshake(suite: SuiteServer) -> None:
    reply = await suite_fetch_open(suite)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.text.startswith("0")
    value = json.loads(reply.text[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(value["sid"], str) and value["sid"]
    assert value["upgrades"] == ["websocket"]
    assert value["pingInterval"] == PING_INTERVAL
    assert value["pingTimeout"] == PING_TIMEOUT
    assert value["maxPayload"] == 1_000_000


async def suite_fetch_open(suite: SuiteServer) -> Reply:
    return await fetch(suite.url("engine.io"))


@pytest.mark.parametrize(
    ("query", "method", "code", "message"),
    [
        ("transport=polling", "GET", 5, "Unsupported protocol version"),
        ("EIO=abc&transport=polling", "GET", 5, "Unsupported protocol version"),
        ("EIO=3&transport=polling", "GET", 5, "Unsupported protocol version"),
        ("EIO=4", "GET", 0, "Transport unknown"),
        ("EIO=4&transport=abc", "GET", 0, "Transport unknown"),
        ("EIO=4&transport=polling", "POST", 2, "Bad handshake method"),
        ("EIO=4&transport=polling", "PUT", 2, "Bad handshake method"),
        ("EIO=4&transport=polling&sid=unknown", "GET", 1, "Session ID unknown"),
    ],
)
@pytest.mark.parametrize("base", ["engine.io", "socket.io"])
async def test_eio_bad_requests_are_400(
    suite: SuiteServer, base: str, query: str, method: str, code: int, message: str
) -> None:
    reply = await fetch(suite.url(base, query), method, b"" if method != "GET" else None)
    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"code": code, "message": message}


async def test_eio_websocket_handshake(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("engine.io"), handshake=False) as peer:
        opening = await peer.next()
        assert isinstance(opening, str) and opening.startswith("0")
        value = json.loads(opening[1:])
        assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert value["upgrades"] == []
        assert value["pingInterval"] == PING_INTERVAL
        assert value["pingTimeout"] == PING_TIMEOUT
        assert value["maxPayload"] == 1_000_000


@pytest.mark.parametrize("query", ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4"])
async def test_eio_websocket_bad_query_is_refused(suite: SuiteServer, query: str) -> None:
    with pytest.raises(tether.InvalidStatus) as info:
        async with tether.connect(suite.ws_url("engine.io", query), compression=None):
            pass
    assert "400" in str(info.value)


@pytest.mark.parametrize(
    "payload",
    ["4hello", f"4test1{SEP}4test2{SEP}4test3", f"4hello{SEP}bAQIDBA=="],
    ids=["one", "several", "text-and-binary"],
)
async def test_eio_polling_messages_echo(suite: SuiteServer, payload: str) -> None:
    _, url = await polling_session(suite, "engine.io")
    reply = await fetch(url, "POST", payload)
    assert (reply.status, reply.text) == (200, "ok")
    reply = await fetch(url)
    assert (reply.status, reply.text) == (200, payload)


async def test_eio_polling_invalid_packet_closes(suite: SuiteServer) -> None:
    _, url = await polling_session(suite, "engine.io")
    reply = await fetch(url, "POST", "abc")
    assert reply.status == 400
    reply = await fetch(url)
    assert reply.status == 400


async def test_eio_polling_duplicate_get_closes(suite: SuiteServer) -> None:
    sid, url = await polling_session(suite, "engine.io")
    first = asyncio.ensure_future(fetch(url))
    await wait_until_polling(suite, suite.engine, sid)
    second = await fetch(url + "&t=burst")
    assert second.status == 400
    reply = await asyncio.wait_for(first, WAIT)
    assert (reply.status, reply.text) == (200, "1")
    assert (await fetch(url)).status == 400


async def test_eio_websocket_messages_echo(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("engine.io")) as peer:
        await peer.send("4hello")
        assert await peer.next() == "4hello"
        await peer.send(b"\x01\x02\x03\x04")
        assert await peer.next() == b"\x01\x02\x03\x04"


async def test_eio_websocket_invalid_packet_closes(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("engine.io")) as peer:
        (session,) = suite.engine.sessions.values()
        await peer.send("abc")
        assert await peer.closed() == []  # nothing but the close
        assert peer.ws.close_code == 1000
    assert session.closed_reason == "parse error"


async def test_eio_polling_ping_pong(suite: SuiteServer) -> None:
    sid, url = await polling_session(suite, "engine.io")
    for _ in range(3):
        reply = await fetch(url)  # parked until the server pings
        assert (reply.status, reply.text) == (200, "2")
        reply = await fetch(url, "POST", "3")
        assert (reply.status, reply.text) == (200, "ok")
    assert sid in suite.engine.sessions


async def test_eio_polling_ping_timeout_closes(suite: SuiteServer) -> None:
    sid, url = await polling_session(suite, "engine.io")
    reply = await fetch(url)
    assert reply.text == "2"
    # No pong: the next poll is released by the close.
    reply = await fetch(url)
    assert (reply.status, reply.text) == (200, "1")
    assert (await fetch(url, "POST", "3")).status == 400
    assert sid not in suite.engine.sessions


async def test_eio_websocket_ping_pong(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("engine.io")) as peer:
        for _ in range(3):
            assert await peer.next(answer_pings=False) == "2"
            await peer.send("3")
        # and client-initiated pings are answered
        await peer.send("2")
        assert await peer.next() == "3"


async def test_eio_websocket_ping_timeout_closes(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("engine.io")) as peer:
        seen = await peer.closed(answer_pings=False)
        assert seen == ["2"]


async def test_eio_polling_forced_close(suite: SuiteServer) -> None:
    sid, url = await polling_session(suite, "engine.io")
    poll = asyncio.ensure_future(fetch(url))
    await wait_until_polling(suite, suite.engine, sid)
    reply = await fetch(url, "POST", "1")
    assert reply.status == 200
    reply = await asyncio.wait_for(poll, WAIT)
    assert (reply.status, reply.text) == (200, "6")
    assert (await fetch(url)).status == 400


async def test_eio_websocket_forced_close(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("engine.io")) as peer:
        (session,) = suite.engine.sessions.values()
        await peer.send("1")
        assert await peer.closed() == []
        assert peer.ws.close_code == 1000
    assert session.closed_reason == "transport close"


async def test_eio_upgrade(suite: SuiteServer) -> None:
    sid, url = await polling_session(suite, "engine.io")
    poll = asyncio.ensure_future(fetch(url))
    await wait_until_polling(suite, suite.engine, sid)
    query = f"EIO=4&transport=websocket&sid={sid}"
    async with Peer.open(suite.ws_url("engine.io", query), handshake=False) as peer:
        await peer.send("2probe")
        assert await peer.next() == "3probe"
        # the parked GET is released with a noop so the client can pause polling
        reply = await asyncio.wait_for(poll, WAIT)
        assert (reply.status, reply.text) == (200, "6")
        await peer.send("5")
        await peer.send("4hello")
        assert await peer.next() == "4hello"
        assert suite.engine.sessions[sid].transport == "websocket"

        # polling is over for this sid
        assert (await fetch(url)).status == 400
        assert (await fetch(url, "POST", "4late")).status == 400

        # a second WebSocket with the same sid is closed at once
        async with Peer.open(suite.ws_url("engine.io", query), handshake=False) as second:
            assert await second.closed() == []  # not even an open packet
            assert (second.ws.close_code, second.ws.close_reason) == (1008, "bad upgrade")

        # the upgraded session keeps working
        await peer.send("4still")
        assert await peer.next() == "4still"


async def test_eio_upgrade_with_noop_and_data_queued(suite: SuiteServer) -> None:
    sid, url = await polling_session(suite, "engine.io")
    query = f"EIO=4&transport=websocket&sid={sid}"
    async with Peer.open(suite.ws_url("engine.io", query), handshake=False) as peer:
        await peer.send("2probe")
        assert await peer.next() == "3probe"
        await peer.send("6")  # a noop during the upgrade is fine
        # a message posted while upgrading is echoed after the upgrade completes
        assert (await fetch(url, "POST", "4queued")).status == 200
        await peer.send("5")
        assert await peer.next() == "4queued"


# =========================================================================== Socket.IO


async def test_sio_connect_main_namespace(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        await peer.send("40")
        connect = await peer.next()
        assert isinstance(connect, str) and connect.startswith("40")
        handshake = json.loads(connect[2:])
        assert set(handshake) == {"sid"}
        assert isinstance(handshake["sid"], str)
        assert await peer.next() == '42["auth",{}]'


async def test_sio_connect_main_namespace_with_auth(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        await peer.send('40{"token":"123"}')
        connect = await peer.next()
        assert isinstance(connect, str) and set(json.loads(connect[2:])) == {"sid"}
        assert await peer.next() == '42["auth",{"token":"123"}]'


@pytest.mark.parametrize(
    ("packet", "auth"), [("40/custom,", "{}"), ('40/custom,{"token":"abc"}', '{"token":"abc"}')]
)
async def test_sio_connect_custom_namespace(suite: SuiteServer, packet: str, auth: str) -> None:
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        await peer.send(packet)
        connect = await peer.next()
        assert isinstance(connect, str) and connect.startswith("40/custom,")
        assert set(json.loads(connect[len("40/custom,") :])) == {"sid"}
        assert await peer.next() == f'42/custom,["auth",{auth}]'


async def test_sio_connect_over_polling(suite: SuiteServer) -> None:
    _, url = await polling_session(suite, "socket.io")
    assert (await fetch(url, "POST", '40{"token":"p"}')).status == 200
    packets: list[str] = []
    async with asyncio.timeout(WAIT):
        while len(packets) < 2:
            reply = await fetch(url)
            packets += [p for p in reply.text.split(SEP) if p not in ("2", "6")]
    assert packets[0].startswith("40{") and set(json.loads(packets[0][2:])) == {"sid"}
    assert packets[1] == '42["auth",{"token":"p"}]'


async def test_sio_unknown_namespace(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        await peer.send("40/random")
        assert await peer.next() == '44/random,{"message":"Invalid namespace"}'


async def test_sio_invalid_handshake_closes(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        (session,) = suite.hub.engine.sessions.values()
        await peer.send("4abc")
        assert await peer.closed() == []
        assert peer.ws.close_code == 1000
    assert session.closed_reason == "parse error"


async def test_sio_connect_timeout_closes(suite: SuiteServer) -> None:
    async with Peer.open(suite.ws_url("socket.io")) as peer:
        (session,) = suite.hub.engine.sessions.values()
        # Pings are answered, so only the missing CONNECT can end the session.
        assert await peer.closed() == []
        assert peer.pings >= 1
    assert session.closed_reason == "connect timeout"


async def test_sio_disconnect_main_namespace(suite: SuiteServer) -> None:
    # The suite waits for "close" here, which its peer gets from the heartbeat (it never
    # answers pings). The reference server keeps the Engine.IO session open after a
    # DISCONNECT; so do we: the namespace socket goes, the session stays and can connect
    # again.
    async with sio_peer(suite) as peer:
        await peer.send("41")
        async with asyncio.timeout(WAIT):
            while suite.hub.sockets:
                await asyncio.sleep(0.005)
        assert len(suite.hub.engine.sessions) == 1
        await peer.send("40")
        connect = await peer.next()
        assert isinstance(connect, str) and connect.startswith("40{")
        assert await peer.next() == '42["auth",{}]'
        assert len(suite.hub.sockets) == 1


async def test_sio_disconnect_custom_namespace_keeps_main(suite: SuiteServer) -> None:
    async with sio_peer(suite) as peer:
        await peer.send("40/custom")
        connect = await peer.next()
        assert isinstance(connect, str) and connect.startswith("40/custom,")
        assert await peer.next() == '42/custom,["auth",{}]'
        await peer.send("41/custom", '42["message","message to main namespace"]')
        assert await peer.next() == '42["message-back","message to main namespace"]'


async def test_sio_plain_event(suite: SuiteServer) -> None:
    async with sio_peer(suite) as peer:
        await peer.send('42["message",1,"2",{"3":[true]}]')
        assert await peer.next() == '42["message-back",1,"2",{"3":[true]}]'


async def test_sio_binary_event(suite: SuiteServer) -> None:
    async with sio_peer(suite) as peer:
        await peer.send(
            '452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02\x03",
            b"\x04\x05\x06",
        )
        assert [await peer.next() for _ in range(3)] == [
            '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02\x03",
            b"\x04\x05\x06",
        ]


async def test_sio_plain_ack(suite: SuiteServer) -> None:
    async with sio_peer(suite) as peer:
        await peer.send('42456["message-with-ack",1,"2",{"3":[false]}]')
        assert await peer.next() == '43456[1,"2",{"3":[false]}]'


async def test_sio_binary_ack(suite: SuiteServer) -> None:
    async with sio_peer(suite) as peer:
        await peer.send(
            '452-789["message-with-ack",{"_placeholder":true,"num":0},'
            '{"_placeholder":true,"num":1}]',
            b"\x01\x02\x03",
            b"\x04\x05\x06",
        )
        assert [await peer.next() for _ in range(3)] == [
            '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02\x03",
            b"\x04\x05\x06",
        ]


async def test_sio_binary_event_over_polling(suite: SuiteServer) -> None:
    _, url = await polling_session(suite, "socket.io")
    assert (await fetch(url, "POST", "40")).status == 200
    body = f'451-["message",{{"_placeholder":true,"num":0}}]{SEP}bAQIDBA=='
    assert (await fetch(url, "POST", body)).status == 200
    packets: list[str] = []
    async with asyncio.timeout(WAIT):
        while not any(p.startswith("451-") for p in packets):
            reply = await fetch(url)
            packets += [p for p in reply.text.split(SEP) if p not in ("2", "6")]
    index = next(i for i, p in enumerate(packets) if p.startswith("451-"))
    assert packets[index] == '451-["message-back",{"_placeholder":true,"num":0}]'
    if index + 1 == len(packets):
        packets += (await fetch(url)).text.split(SEP)
    assert packets[index + 1] == "bAQIDBA=="


@pytest.mark.parametrize(
    "packet",
    ["4abc", "42{}", '42abc["message-with-ack",1,"2",{"3":[false]}]', "4", '42["connect"]'],
    ids=["unknown-type", "bad-payload", "bad-ack-id", "empty", "reserved-event"],
)
async def test_sio_invalid_packets_close(suite: SuiteServer, packet: str) -> None:
    async with sio_peer(suite) as peer:
        (session,) = suite.hub.engine.sessions.values()
        await peer.send(packet)
        assert await peer.closed() == []  # no event, ack or error before the close
        assert peer.ws.close_code == 1000
    assert session.closed_reason == "parse error"
