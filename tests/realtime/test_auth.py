"""tether.realtime.auth: a token checked on connect, a socket that lives as long as its
token (expiry, in-band refresh), revocation across the cluster, and tokens that never
reach a log line. Real hubs on 127.0.0.1, real tether clients (and raw WebSockets where
the test needs the packets), no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.exceptions import ConnectError, ConnectionRefused, InvalidOption
from tether.realtime import (
    Authenticator,
    Client,
    Hub,
    JWTVerifier,
    Recovery,
    Socket,
    from_auth,
    from_cookie,
    from_header,
    from_query,
)
from tether.realtime.socket import Handshake

from .cluster_helpers import Cluster
from .serving import WAIT, wait_until

try:
    import jwt
except ImportError:  # the JWT tests skip; the others use a verifier of their own
    jwt = None  # type: ignore[assignment]

needs_jwt = pytest.mark.skipif(jwt is None, reason="PyJWT is not installed (tether[jwt])")

# 64 bytes and more: PyJWT warns about shorter HMAC keys for HS512.
SECRET = "tether-test-secret-" + "0123456789abcdef" * 4
OTHER_SECRET = "another-secret-" + "fedcba9876543210" * 4
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jwt_auth.py"
SRC = Path(__file__).resolve().parents[2] / "src"
# Expiry tests use tokens this many seconds ahead: PyJWT compares int(exp), so the
# token stays valid for at least 0.2 s, long enough to connect.
SHORT = 1.2


def make_token(sub: str = "alice", ttl: float = 60.0, secret: str = SECRET, **claims: Any) -> str:
    assert jwt is not None
    return jwt.encode({"sub": sub, "exp": time.time() + ttl, **claims}, secret, algorithm="HS256")


class Table:
    """A verifier of our own, async: known tokens and their claims."""

    def __init__(self, **tokens: dict[str, Any]) -> None:
        self.tokens = tokens

    async def __call__(self, token: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        claims = self.tokens.get(token)
        if claims is None:
            raise ConnectionRefused("invalid token: unknown")
        return dict(claims)


def far() -> float:
    return time.time() + 3600


def table() -> Table:
    return Table(
        **{
            "tok-alice": {"sub": "alice", "exp": far()},
            "tok-alice-2": {"sub": "alice", "exp": far()},
            "tok-bob": {"sub": "bob", "exp": far()},
            "tok-carol": {"sub": "carol"},  # no exp: no timer
        }
    )


def user_handlers(hub: Hub, namespace: str = "/") -> None:
    @hub.on("user", namespace)
    async def user(socket: Socket) -> list[Any]:
        return [socket.data["user_id"], sorted(socket.rooms - {socket.sid})]


class Recorder:
    """What one client saw, in order: server events and its disconnection."""

    def __init__(self, client: Client, namespace: str = "/") -> None:
        self.seen: list[tuple[str, Any]] = []
        client.on("*", self._event, namespace=namespace)
        client.on("disconnect", self._gone, namespace=namespace)

    def _event(self, event: str, *args: Any) -> None:
        self.seen.append((event, args[0] if len(args) == 1 else args))

    def _gone(self, reason: str) -> None:
        self.seen.append(("disconnect", reason))

    @property
    def disconnected(self) -> bool:
        return any(name == "disconnect" for name, _ in self.seen)


Connect = Callable[..., Awaitable[tuple[Client, Recorder]]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port, auth=..., headers=..., query=...)`` -> (client, recorder);
    every client is disconnected at the end."""
    clients: list[Client] = []

    async def open_client(
        port: int,
        *,
        query: str = "",
        namespace: str = "/",
        transports: tuple[str, ...] = ("websocket",),
        **kw: Any,
    ) -> tuple[Client, Recorder]:
        client = Client(reconnection=False)
        clients.append(client)
        recorder = Recorder(client, namespace)
        await client.connect(
            f"http://127.0.0.1:{port}{query}",
            namespaces=[namespace],
            transports=list(transports),
            wait_timeout=WAIT,
            **kw,
        )
        return client, recorder

    yield open_client
    for client in clients:
        await client.disconnect()


@contextlib.asynccontextmanager
async def serving(auth: Authenticator, **hub_options: Any) -> AsyncIterator[tuple[Hub, int]]:
    hub = Hub(**hub_options)
    auth.install(hub)
    user_handlers(hub)
    async with hub.serve("127.0.0.1", 0) as server:
        yield hub, server.port


async def refused(connect: Connect, port: int, **kw: Any) -> str:
    """Connect, expecting a refusal; returns its message."""
    with pytest.raises(ConnectError) as info:
        await connect(port, **kw)
    data = info.value.data
    assert isinstance(data, dict), data
    return str(data["message"])


# --------------------------------------------------------------------------- sources


def _handshake(**kw: Any) -> Handshake:
    values: dict[str, Any] = {"auth": {}, "headers": {}, "query": {}, "address": None}
    values.update(kw)
    return Handshake(time=0.0, url="/", **values)


def test_sources_find_tokens_without_regard_to_case_where_http_says_so() -> None:
    header = from_header()
    assert header(_handshake(headers={"authorization": "Bearer abc"})) == "abc"
    assert header(_handshake(headers={"Authorization": "bearer  abc "})) == "abc"
    assert header(_handshake(headers={"AUTHORIZATION": "BEARER abc"})) == "abc"
    assert header(_handshake(headers={"authorization": "Basic abc"})) is None
    assert header(_handshake(headers={"authorization": "Bearer "})) is None
    assert from_header("X-Token", None)(_handshake(headers={"x-token": "t"})) == "t"
    assert from_auth()(_handshake(auth={"token": "t"})) == "t"
    assert from_auth()(_handshake(auth={"token": 42})) is None
    assert from_auth("jwt")(_handshake(auth={"token": "t"})) is None
    assert from_query()(_handshake(query={"token": "q"})) == "q"
    assert from_query()(_handshake(query={"token": ""})) is None
    cookie = from_cookie("session")
    assert cookie(_handshake(headers={"cookie": 'a=1; session="c"; b=2'})) == "c"
    assert cookie(_handshake(headers={"Cookie": "xsession=no; session=c2"})) == "c2"
    assert cookie(_handshake(headers={"cookie": "broken; other=1"})) is None
    with pytest.raises(InvalidOption):
        from_cookie("")


@pytest.mark.parametrize("transports", [("websocket",), ("polling", "websocket")])
@pytest.mark.parametrize("carrier", ["auth", "header", "query", "cookie"])
async def test_a_token_from_each_source_is_accepted(
    carrier: str, transports: tuple[str, ...], connect: Connect
) -> None:
    tokens = Table(**{f"tok-{carrier}": {"sub": "alice", "exp": far()}})
    auth = Authenticator(
        tokens, sources=(from_auth(), from_header(), from_query(), from_cookie("session"))
    )
    token = f"tok-{carrier}"
    kw: dict[str, Any] = {
        "auth": {"auth": {"token": token}},
        "header": {"headers": {"authorization": f"bearer {token}"}},
        "query": {"query": f"?token={token}"},
        "cookie": {"headers": {"Cookie": f"theme=dark; session={token}"}},
    }[carrier]
    async with serving(auth) as (hub, port):
        client, _ = await connect(port, transports=transports, **kw)
        assert await client.emit_with_ack("user", timeout=WAIT) == ["alice", ["user:alice"]]
        (socket,) = hub.sockets.values()
        assert socket.data["user_id"] == "alice"
        assert socket.data["claims"]["sub"] == "alice"
        assert auth.timers == 1
        # The same carrier with a token nobody issued is refused.
        bad = {k: json.loads(json.dumps(v).replace(token, "tok-forged")) for k, v in kw.items()}
        message = await refused(connect, port, transports=transports, **bad)
        assert message == "invalid token: unknown"


async def test_no_token_is_refused_with_a_message(connect: Connect) -> None:
    auth = Authenticator(table())
    async with serving(auth) as (hub, port):
        assert await refused(connect, port) == "authentication required"
        # A token where this authenticator does not look is no token.
        message = await refused(connect, port, query="?token=tok-alice")
        assert message == "authentication required"
        assert await refused(connect, port, auth={"token": ""}) == "authentication required"
        assert hub.sockets == {} and hub.of("/").adapter.rooms == {}


@needs_jwt
@pytest.mark.parametrize(
    ("token_kw", "reason"),
    [
        ({"secret": OTHER_SECRET}, "bad signature"),
        ({"ttl": -30}, "expired"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"nbf": time.time() + 3600}, "not yet valid"),
        ({"sub": None}, "missing claim 'sub'"),
        (None, "malformed"),
    ],
)
async def test_bad_jwts_are_refused_with_the_reason_but_not_the_token(
    token_kw: dict[str, Any] | None, reason: str, connect: Connect
) -> None:
    auth = Authenticator(JWTVerifier(SECRET))
    if token_kw is None:
        token = "not.a.jwt-at-all"
    elif token_kw.get("sub", "") is None:
        assert jwt is not None
        token = jwt.encode({"exp": time.time() + 60}, SECRET, algorithm="HS256")
    else:
        token = make_token(**token_kw)
    async with serving(auth) as (_, port):
        message = await refused(connect, port, auth={"token": token})
        assert message == f"invalid token: {reason}"
        assert token not in message
        # And a good one is accepted by the same hub.
        client, _ = await connect(port, auth={"token": make_token()})
        assert (await client.emit_with_ack("user", timeout=WAIT))[0] == "alice"


@needs_jwt
def test_jwt_verifier_checks_issuer_audience_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    verify = JWTVerifier(SECRET, audience="hub", issuer="auth-server", user_claim="uid")
    good = make_token(aud="hub", iss="auth-server", uid="u1")
    assert verify(good)["uid"] == "u1"
    with pytest.raises(ConnectionRefused, match=r"^invalid token: wrong issuer$"):
        verify(make_token(aud="hub", iss="elsewhere", uid="u1"))
    with pytest.raises(ConnectionRefused, match=r"^invalid token: missing claim 'uid'$"):
        verify(make_token(aud="hub", iss="auth-server"))
    with pytest.raises(ConnectionRefused, match=r"^invalid token: algorithm not allowed$"):
        assert jwt is not None
        verify(jwt.encode({"uid": "u1"}, SECRET, algorithm="HS512"))
    # The leeway lets a just-expired token through, and the Authenticator takes it up.
    lenient = JWTVerifier(SECRET, leeway=30)
    assert lenient(make_token(ttl=-5))["sub"] == "alice"
    assert Authenticator(lenient).leeway == 30.0
    with pytest.raises(InvalidOption):
        JWTVerifier(SECRET, algorithms=["HS256", "none"])
    with pytest.raises(InvalidOption):
        JWTVerifier(SECRET, algorithms=[])
    # Without PyJWT the verifier says what to install.
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError, match=r"tether\[jwt\]"):
        JWTVerifier(SECRET)


def test_authenticator_options_are_checked() -> None:
    with pytest.raises(InvalidOption):
        Authenticator(table(), user_room="everyone")  # revoking one would end all
    with pytest.raises(InvalidOption):
        Authenticator(table(), refresh_event="connect")
    with pytest.raises(InvalidOption):
        Authenticator(table(), sources=())
    with pytest.raises(InvalidOption):
        Authenticator(table(), leeway=-1)


async def test_verifier_failures_never_leak_the_token(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    token = "secret-token-abcdef.0123456789"

    def echoing(value: str) -> dict[str, Any]:
        if value == token:
            raise ConnectionRefused(f"no such token {value}")
        raise ValueError(f"cannot parse {value}")

    auth = Authenticator(echoing)
    async with serving(auth) as (_, port):
        message = await refused(connect, port, auth={"token": token})
        assert message == "no such token <redacted>"
        message = await refused(connect, port, auth={"token": token + "x"})
        assert message == "invalid token"
        too_long = "y" * 10_000
        assert await refused(connect, port, auth={"token": too_long}) == "invalid token: too long"
    assert "refused" in caplog.text
    for piece in (token, "secret-token-abcdef", "0123456789", too_long[:64]):
        assert piece not in caplog.text


# --------------------------------------------------------------------------- expiry, refresh


@needs_jwt
async def test_expiry_sends_the_event_then_disconnects(connect: Connect) -> None:
    auth = Authenticator(JWTVerifier(SECRET))
    token = make_token(ttl=SHORT)
    exp = jwt.decode(token, SECRET, algorithms=["HS256"])["exp"]  # type: ignore[union-attr]
    async with serving(auth) as (hub, port):
        client, seen = await connect(port, auth={"token": token})
        assert auth.timers == 1
        await wait_until(lambda: seen.disconnected, timeout=SHORT + 2)
        assert time.time() >= exp - 0.05  # not before exp
        assert seen.seen == [
            ("tether:token_expired", {"reason": "token expired", "exp": exp}),
            ("disconnect", "io server disconnect"),
        ]
        assert not client.connected
        await wait_until(lambda: not hub.sockets)
        assert auth.timers == 0 and not auth._tasks


@needs_jwt
async def test_refresh_extends_the_life_of_the_socket(connect: Connect) -> None:
    auth = Authenticator(JWTVerifier(SECRET))
    async with serving(auth) as (hub, port):
        client, seen = await connect(port, auth={"token": make_token(ttl=SHORT)})
        old_exp = hub.sockets[client.sid or ""].data["claims"]["exp"]
        fresh = make_token(ttl=30)
        reply = await client.emit_with_ack("tether:refresh", fresh, timeout=WAIT)
        assert reply["ok"] is True and reply["exp"] > old_exp + 20
        # The new token also comes wrapped, as {"token": ...}.
        reply = await client.emit_with_ack("tether:refresh", {"token": fresh}, timeout=WAIT)
        assert reply["ok"] is True
        await asyncio.sleep(max(0.0, old_exp - time.time()) + 0.4)
        assert client.connected and not seen.seen
        assert (await client.emit_with_ack("user", timeout=WAIT))[0] == "alice"
        assert hub.sockets[client.sid or ""].data["claims"]["exp"] == reply["exp"]
        assert auth.timers == 1
        await client.disconnect()
        await wait_until(lambda: auth.timers == 0)


@needs_jwt
async def test_failed_refresh_changes_nothing_and_the_old_expiry_holds(connect: Connect) -> None:
    auth = Authenticator(JWTVerifier(SECRET))
    async with serving(auth) as (_, port):
        client, seen = await connect(port, auth={"token": make_token(ttl=SHORT)})

        async def refresh(*args: Any) -> Any:
            return await client.emit_with_ack("tether:refresh", *args, timeout=WAIT)

        assert await refresh(make_token("bob", ttl=60)) == {
            "ok": False,
            "error": "token of another user",
        }
        assert await refresh(make_token(ttl=60, secret=OTHER_SECRET)) == {
            "ok": False,
            "error": "invalid token: bad signature",
        }
        assert await refresh(make_token(ttl=-60)) == {
            "ok": False,
            "error": "invalid token: expired",
        }
        assert await refresh() == {"ok": False, "error": "a token is required"}
        assert client.connected and not seen.seen
        await wait_until(lambda: seen.disconnected, timeout=SHORT + 2)
        assert [name for name, _ in seen.seen] == ["tether:token_expired", "disconnect"]


async def test_a_token_without_exp_arms_no_timer(connect: Connect) -> None:
    auth = Authenticator(table())
    async with serving(auth) as (hub, port):
        client, _ = await connect(port, auth={"token": "tok-carol"})
        assert (await client.emit_with_ack("user", timeout=WAIT))[0] == "carol"
        assert auth.timers == 0 and len(hub.sockets) == 1


# --------------------------------------------------------------------------- revoke


async def test_revoke_disconnects_every_socket_of_the_user_and_no_other(connect: Connect) -> None:
    auth = Authenticator(table())
    async with serving(auth) as (hub, port):
        a1, seen1 = await connect(port, auth={"token": "tok-alice"})
        a2, seen2 = await connect(port, headers={"Authorization": "Bearer tok-alice-2"})
        bob, seen_bob = await connect(port, auth={"token": "tok-bob"})
        assert auth.timers == 3
        result = await auth.revoke(hub, "alice", reason="password changed")
        assert result.disconnected == 2 and not result.missing
        for seen in (seen1, seen2):
            await wait_until(lambda seen=seen: seen.disconnected)  # type: ignore[misc]
            assert seen.seen == [
                ("tether:revoked", {"reason": "password changed"}),
                ("disconnect", "io server disconnect"),
            ]
        assert (await bob.emit_with_ack("user", timeout=WAIT))[0] == "bob"
        assert not seen_bob.seen and not a1.connected and not a2.connected
        assert auth.timers == 1
        assert (await auth.revoke(hub, "nobody")).disconnected == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_revoke_reaches_every_node_of_the_cluster(kind: str, connect: Connect) -> None:
    auth = Authenticator(table())
    cluster = Cluster(kind, n=2)
    for hub in cluster.hubs:
        auth.install(hub)
        user_handlers(hub)
    await cluster.start()
    try:
        ports = [server.port for server in cluster.servers]
        _, alice0 = await connect(ports[0], auth={"token": "tok-alice"})
        _, alice1 = await connect(ports[1], auth={"token": "tok-alice-2"})
        bob1, seen_bob1 = await connect(ports[1], auth={"token": "tok-bob"})
        bob0, seen_bob0 = await connect(ports[0], auth={"token": "tok-bob"})
        result = await auth.revoke(cluster.hubs[0], "alice")
        assert result.disconnected == 2 and not result.missing
        for seen in (alice0, alice1):
            await wait_until(lambda seen=seen: seen.disconnected)  # type: ignore[misc]
            assert seen.seen == [
                ("tether:revoked", {"reason": "revoked"}),
                ("disconnect", "io server disconnect"),
            ]
        for bob in (bob0, bob1):
            assert (await bob.emit_with_ack("user", timeout=WAIT))[0] == "bob"
        assert not seen_bob0.seen and not seen_bob1.seen
        # From the other node, the other way round.
        result = await auth.revoke(cluster.hubs[1], "bob")
        assert result.disconnected == 2
        await wait_until(lambda: seen_bob0.disconnected and seen_bob1.disconnected)
        assert all(not hub.sockets for hub in cluster.hubs)
        assert auth.timers == 0
    finally:
        await cluster.close()


# --------------------------------------------------------------------------- logs, leaks


def _assert_absent(text: str, tokens: list[str]) -> None:
    for token in tokens:
        _, payload, signature = token.split(".")
        assert token not in text
        assert payload not in text and signature not in text


@needs_jwt
async def test_tokens_never_appear_in_logs(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    auth = Authenticator(
        JWTVerifier(SECRET),
        sources=(from_auth(), from_header(), from_query(), from_cookie("session")),
    )
    marker = "RECOGNISABLE-MARKER-7f3a"
    forged = make_token(ttl=60, secret=OTHER_SECRET, marker=marker)
    first = make_token(ttl=30, marker=marker)
    bad_refresh = make_token(ttl=30, secret=OTHER_SECRET, marker=marker)
    short = make_token(ttl=SHORT, marker=marker)
    both = ("polling", "websocket")
    async with serving(auth) as (hub, port):
        # Refusals, from each carrier but the URL (see the next test).
        await refused(connect, port, auth={"token": forged}, transports=both)
        await refused(connect, port, headers={"Authorization": f"Bearer {forged}"})
        await refused(connect, port, headers={"Cookie": f"session={forged}"}, transports=both)
        # Accepted, refreshed badly, then well with a shorter token, which expires.
        client, seen = await connect(port, auth={"token": first}, transports=both)
        reply = await client.emit_with_ack("tether:refresh", bad_refresh, timeout=WAIT)
        assert reply["ok"] is False
        reply = await client.emit_with_ack("tether:refresh", short, timeout=WAIT)
        assert reply["ok"] is True
        await wait_until(lambda: seen.disconnected, timeout=SHORT + 2)
        await client.disconnect()
        await wait_until(lambda: not hub.sockets)
    text = caplog.text
    # The logs were written: the test would see a token in them.
    assert "refused: invalid token: bad signature" in text
    assert "refresh refused" in text and "expired" in text
    _assert_absent(text, [forged, first, bad_refresh, short])
    assert marker not in text


@needs_jwt
async def test_query_tokens_never_appear_in_logs(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    auth = Authenticator(JWTVerifier(SECRET), sources=(from_query(),))
    forged = make_token(ttl=60, secret=OTHER_SECRET)
    good = make_token(ttl=60)
    async with serving(auth) as (_, port):
        await refused(connect, port, query=f"?token={forged}")
        client, _ = await connect(port, query=f"?token={good}")
        assert (await client.emit_with_ack("user", timeout=WAIT))[0] == "alice"
    assert "refused: invalid token: bad signature" in caplog.text
    _assert_absent(caplog.text, [forged, good])


async def test_no_timer_or_entry_is_left_after_a_thousand_connections() -> None:
    auth = Authenticator(table())
    hub = Hub()
    auth.install(hub)
    auth.install(hub, "/other")
    peak = 0

    async def cycles(port: int, n: int, close_at_end: bool) -> None:
        nonlocal peak
        ws = await tether.connect(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", compression=None
        )
        assert str(await ws.recv()).startswith("0")
        # Two namespaces in turn: a CONNECT right after the DISCONNECT of the same
        # namespace could reach the hub before that socket is gone, and be ignored.
        for i in range(n):
            prefix = "40" if i % 2 == 0 else "40/other,"
            token = "tok-alice" if i % 3 else "tok-bob"
            await ws.send(prefix + json.dumps({"token": token}))
            reply = str(await asyncio.wait_for(ws.recv(), WAIT))
            assert reply.startswith(prefix + "{"), reply
            peak = max(peak, auth.timers)
            if i < n - 1 or not close_at_end:
                await ws.send("41" if i % 2 == 0 else "41/other,")
        # One refusal per connection too.
        await ws.send('40{"token":"forged"}')
        assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("44")
        await ws.close()  # a socket still connected when the transport goes

    async with hub.serve("127.0.0.1", 0) as server:
        start = time.monotonic()
        await asyncio.gather(*(cycles(server.port, 100, i % 2 == 0) for i in range(10)))
        await wait_until(lambda: not hub.sockets and not hub.of("/other").sockets)
        elapsed = time.monotonic() - start
        assert peak >= 2, "timers were armed along the way"
        assert auth.timers == 0 and not auth._timers and not auth._tasks
        gc.collect()
        assert len(auth._verified) == 0
        assert hub.of("/").adapter.rooms == {} and hub.of("/other").adapter.rooms == {}
        assert elapsed < 30


async def test_a_recovered_session_is_never_handed_to_another_user() -> None:
    auth = Authenticator(table())
    hub = Hub(recovery=Recovery(skip_middlewares=False))
    auth.install(hub)
    url = "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket"

    async def sio(port: int, payload: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        ws = await tether.connect(url.format(port), compression=None)
        assert str(await ws.recv()).startswith("0")
        await ws.send("40" + json.dumps(payload))
        reply = str(await asyncio.wait_for(ws.recv(), WAIT))
        assert reply.startswith("40{"), reply
        return ws, json.loads(reply[2:])

    async def leave_behind(port: int) -> tuple[dict[str, Any], str]:
        ws, first = await sio(port, {"token": "tok-alice"})
        await hub.emit("tick")
        offset = json.loads(str(await asyncio.wait_for(ws.recv(), WAIT))[2:])[-1]
        await ws.close()  # not a deliberate disconnect: the state is kept
        await wait_until(lambda: not hub.sockets)
        return first, offset

    async with hub.serve("127.0.0.1", 0) as server:
        first, offset = await leave_behind(server.port)
        ws, _ = await sio(server.port, {"token": "tok-bob", "pid": first["pid"], "offset": offset})
        assert str(await asyncio.wait_for(ws.recv(), WAIT)) == "41"
        await ws.close()
        await wait_until(lambda: not hub.sockets)
        assert auth.timers == 0
        # Alice herself gets her session back, with her fresh claims and a timer.
        first, offset = await leave_behind(server.port)
        ws, again = await sio(
            server.port, {"token": "tok-alice", "pid": first["pid"], "offset": offset}
        )
        assert again["sid"] == first["sid"]
        (socket,) = hub.sockets.values()
        assert socket.recovered and socket.data["user_id"] == "alice"
        assert "user:alice" in socket.rooms and auth.timers == 1
        await ws.close()


# --------------------------------------------------------------------------- the example


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("jwt_auth_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_jwt
async def test_example_hub_authenticates_refreshes_and_revokes(connect: Connect) -> None:
    example = _load_example()
    hub, auth = example.build_hub(SECRET)
    async with hub.serve("127.0.0.1", 0) as server:
        client, _ = await connect(server.port, auth={"token": example.make_token(SECRET, "ann")})
        me = await client.emit_with_ack("whoami", timeout=WAIT)
        assert me["user"] == "ann" and me["exp"] > time.time()
        fresh = example.make_token(SECRET, "ann", ttl=600)
        assert (await client.emit_with_ack("tether:refresh", fresh, timeout=WAIT))["ok"]
        # The example wants its issuer: a token of ours without it is refused.
        assert await refused(connect, server.port, auth={"token": make_token("ann")}) == (
            "invalid token: missing claim 'iss'"
        )
        _, seen = await connect(server.port, auth={"token": example.make_token(SECRET, "bo")})
        assert await client.emit_with_ack("revoke", "bo", timeout=WAIT) == 1
        await wait_until(lambda: seen.disconnected)
        assert seen.seen[0] == ("tether:revoked", {"reason": "revoked by ann"})
        assert auth.timers == 1


@needs_jwt
def test_example_runs_as_a_program() -> None:
    env = dict(os.environ, JWT_SECRET=SECRET, PYTHONPATH=str(SRC))
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "token", "ann", "--ttl", "60"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert JWTVerifier(SECRET, issuer="tether-example")(out.stdout.strip())["sub"] == "ann"
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), (
            proc.stderr.read() if proc.stderr else ""
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    unset = {k: v for k, v in env.items() if k != "JWT_SECRET"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "token", "ann"],
        capture_output=True,
        text=True,
        timeout=60,
        env=unset,
    )
    assert out.returncode == 2 and "JWT_SECRET" in out.stderr
