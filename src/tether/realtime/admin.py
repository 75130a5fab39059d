"""The Socket.IO Admin UI on a hub: ``hub.instrument(auth=...)``.

The official dashboard (the ``@socket.io/admin-ui`` npm package, also hosted at
https://admin.socket.io) is a Socket.IO client of a namespace of the server (``/admin``
by default). Once instrumented, the hub tells that namespace what happens on every other
namespace, dynamic ones included, and takes the dashboard's commands::

    hub = Hub(cors_origins=["https://admin.socket.io"], cors_credentials=True)
    hub.instrument(auth={"type": "basic", "username": "admin", "password": "secret"})

What goes to the dashboard (``@socket.io/admin-ui`` 0.5, its server events):

- ``session`` ``(id)``: after a login with username and password; the dashboard sends
  ``{"sessionId": id}`` instead of the password when it reconnects (kept 24 h, on this
  node).
- ``config`` ``({"supportedFeatures": [...]})``: the commands accepted (none when
  ``readonly``), ``AGGREGATED_EVENTS``, and ``ALL_EVENTS`` in development mode.
- ``server_stats`` ``(stats)`` every ``stats_interval`` seconds from every instrumented
  node: ``serverId``, ``hostname``, ``pid``, ``uptime``, ``clientsCount``,
  ``pollingClientsCount``, ``namespaces`` (``name``, ``socketsCount``) and
  ``aggregatedEvents`` (connections, disconnections by reason, packets and bytes in and
  out since the last report).
- development mode only: ``all_sockets`` (the sockets of every namespace of every
  instrumented node, when a dashboard connects), ``socket_connected``,
  ``socket_updated`` (the transport after an upgrade), ``socket_disconnected``,
  ``room_joined``, ``room_left``, ``event_received`` and ``event_sent``.

A socket is sent as ``{"id", "clientId", "transport", "nsp", "data", "handshake",
"rooms"}``; ``handshake`` has ``address``, ``headers`` (``authorization``,
``proxy-authorization`` and ``cookie`` redacted), ``query``, ``issued`` (ms), ``secure``,
``time``, ``url`` and ``xdomain``; ``clientId`` is a digest of the Engine.IO session id,
never the id itself (on long-polling it is a credential).

What the dashboard may ask (unless ``readonly``), on any namespace this node knows, for
every node of the cluster (through the hub's broker): ``emit (nsp, room | None, event,
*args)``, ``join (nsp, room, target | None)``, ``leave (nsp, room, target | None)`` and
``_disconnect (nsp, close, target | None)``, where ``target`` is a room (a socket id
names one socket).

Call :meth:`~tether.realtime.Hub.instrument` before the hub serves: sessions opened
before are not followed (their sockets still appear in ``all_sockets``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import hashlib
import hmac
import importlib
import json
import logging
import os
import re
import secrets
import socket as socket_module
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..exceptions import (
    AckTimeout,
    BufferFull,
    ConnectionRefused,
    InvalidOption,
    InvalidState,
    LimitExceeded,
)
from .connection import Connection
from .operator import BroadcastOperator

if TYPE_CHECKING:
    from ..engine.session import Session
    from .hub import Hub
    from .namespace import Namespace
    from .packets import Packet
    from .socket import Socket

__all__ = ["AdminUI", "Mode", "serialize_socket"]

logger = logging.getLogger("tether.realtime.admin")

Mode = Literal["development", "production"]

#: The server event another node answers with its serialized sockets (``all_sockets``).
SOCKETS_EVENT = "tether:admin-ui:sockets"
#: How long a dashboard login (its ``session`` id) is honoured, and how many are kept.
SESSION_TTL = 24 * 3600.0
MAX_SESSIONS = 1000
#: Notifications waiting for the admin namespace; beyond, new ones are dropped (counted
#: in ``tether_admin_ui_dropped_total``): a dashboard is never worth the server's memory.
MAX_PENDING = 10_000
#: Handshake headers whose values never leave the server.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_BCRYPT_HASH = re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}")
_REDACTED = "[redacted]"
#: The commands a dashboard may send unless ``readonly`` (the features it is told of).
_COMMANDS = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")


def _now() -> str:
    # What JSON.stringify(new Date()) gives: the dashboard sorts and shows these.
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _client_id(session_sid: str) -> str:
    # A polling client is its sid (whoever knows it can read its session), so the
    # dashboard gets a digest: stable, the same on every node, and not the sid.
    return hashlib.blake2s(session_sid.encode(), digest_size=6).hexdigest()


def _host(address: Any) -> str:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return "" if address is None else str(address)


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it (anything else as its repr; a cycle as None)."""
    try:
        return json.loads(json.dumps(value, default=repr, skipkeys=True))
    except (TypeError, ValueError):
        return None


def serialize_socket(socket: Socket) -> dict[str, Any]:
    """A local socket as the dashboard shows it (JSON, the same shape as
    ``@socket.io/admin-ui``'s)."""
    hs = socket.handshake
    session = socket.client.session
    headers = hs.headers
    address = headers.get("cf-connecting-ip") or headers.get("x-forwarded-for") or _host(hs.address)
    data = _plain(socket.data)
    return {
        "id": socket.sid,
        "clientId": _client_id(session.sid),
        "transport": session.transport,
        "nsp": socket.namespace.name,
        "data": data if isinstance(data, dict) else {},
        "handshake": {
            "address": address,
            "headers": {k: (_REDACTED if k in SECRET_HEADERS else v) for k, v in headers.items()},
            "query": dict(hs.query),
            "issued": int(hs.time * 1000),
            # The server does not record TLS per request; a TLS-terminating proxy says it.
            "secure": headers.get("x-forwarded-proto", "").lower() == "https",
            "time": email.utils.formatdate(hs.time, usegmt=True),
            "url": hs.url,
            "xdomain": "origin" in headers,
        },
        "rooms": sorted(socket.rooms),
    }


def _bcrypt() -> Any:
    try:
        # Optional, and without type hints: imported by name.
        bcrypt = importlib.import_module("bcrypt")
    except ImportError as exc:
        raise ImportError(
            "the admin UI password is a bcrypt hash: checking it needs the bcrypt package"
            " (pip install bcrypt), or give the password itself"
        ) from exc
    return bcrypt


def _password_check(auth: Mapping[str, Any]) -> Callable[[str, str], Awaitable[bool]]:
    """The credentials check of ``{"type": "basic", "username", "password"}``.

    Raises:
        InvalidOption: another type, or a username or password that is not a string.
        ImportError: the password is a bcrypt hash and bcrypt is not installed.
    """
    username, password = auth.get("username"), auth.get("password")
    if auth.get("type") != "basic" or not isinstance(username, str) or not username:
        raise InvalidOption(
            'auth must be False or {"type": "basic", "username": ..., "password": ...}'
        )
    if not isinstance(password, str) or not password:
        raise InvalidOption("auth needs a password (or a bcrypt hash of one)")
    expected_user = username.encode()
    if _BCRYPT_HASH.fullmatch(password):
        bcrypt = _bcrypt()
        hashed = password.encode()

        def verify(given: bytes) -> bool:
            try:
                return bool(bcrypt.checkpw(given, hashed))
            except ValueError:  # longer than bcrypt takes (72 bytes), or a bad hash
                return False

        async def check(user: str, given: str) -> bool:
            # bcrypt is slow on purpose: off the event loop.
            ok = await asyncio.to_thread(verify, given.encode())
            return hmac.compare_digest(user.encode(), expected_user) and ok

        return check
    expected = password.encode()

    async def check_plain(user: str, given: str) -> bool:
        same_user = hmac.compare_digest(user.encode(), expected_user)
        return hmac.compare_digest(given.encode(), expected) and same_user

    return check_plain


class _AdminConnection(Connection):
    """A session counted for ``server_stats`` (the hub's ``_connection_class`` once
    instrumented in production mode)."""

    def __init__(self, hub: Hub, session: Session) -> None:
        super().__init__(hub, session)
        admin = hub._admin
        if admin is not None:
            admin._opened(self)

    def on_close(self, reason: str) -> None:
        """The session closed (counted), then as in :class:`Connection`."""
        admin = self.hub._admin
        if admin is not None:
            admin._closed(self, reason)
        super().on_close(reason)


class _VerboseConnection(_AdminConnection):
    """Also reports its sockets and the events they send (development mode)."""

    async def _connected(self, ns: Namespace, socket: Socket, auth: dict[str, Any]) -> None:
        admin = self.hub._admin
        if admin is not None:
            admin._socket_connected(socket)
        await super()._connected(ns, socket, auth)

    async def _remove_socket(self, socket: Socket, reason: str) -> None:
        admin = self.hub._admin
        # Before the removal, which forgets its rooms (and runs disconnect handlers).
        if admin is not None and socket.connected:
            admin._socket_disconnected(socket, reason)
        await super()._remove_socket(socket, reason)

    def _dispatch(self, socket: Socket, packet: Packet) -> None:
        admin = self.hub._admin
        if admin is not None:
            admin._received(socket, packet.data)
        super()._dispatch(socket, packet)


def _connection_class(base: type[Connection], verbose: bool) -> type[Connection]:
    mixin: type[Connection] = _VerboseConnection if verbose else _AdminConnection
    if base is Connection:
        return mixin
    # The hub already has its own subclass: keep it, below ours.
    combined: type[Connection] = type(f"Admin{base.__name__}", (mixin, base), {})
    return combined


class AdminUI:
    """What :meth:`Hub.instrument` sets up: the admin namespace and the reports to it.

    Args:
        hub: the hub to instrument.
        auth: False (no login: anyone who reaches the namespace sees and, unless
            ``readonly``, acts), or ``{"type": "basic", "username": ..., "password":
            ...}``; the password may be a bcrypt hash (``$2b$...``) when the ``bcrypt``
            package is installed.
        readonly: refuse the dashboard's commands (join, leave, disconnect, emit).
        namespace: the admin namespace (not ``/``).
        server_id: this node's name in the dashboard (``hostname#pid`` by default).
        mode: ``"development"`` (every socket, room change and event) or
            ``"production"`` (``server_stats`` only: counts, namespaces, aggregates).
        stats_interval: seconds between ``server_stats`` (the dashboard marks a server
            unhealthy after 10 s without one).

    Raises:
        InvalidOption: a bad ``auth``, ``mode``, ``namespace`` or ``stats_interval``.
        ImportError: the password is a bcrypt hash and bcrypt is not installed.
        InvalidState: the hub is already instrumented.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        auth: Literal[False] | Mapping[str, Any],
        readonly: bool = False,
        namespace: str = "/admin",
        server_id: str | None = None,
        mode: Mode = "development",
        stats_interval: float = 2.0,
    ) -> None:
        if hub._admin is not None:
            raise InvalidState("the hub is already instrumented")
        if mode not in ("development", "production"):
            raise InvalidOption(f"mode must be 'development' or 'production', not {mode!r}")
        if not namespace.startswith("/"):
            namespace = "/" + namespace
        if namespace == "/":
            raise InvalidOption("the admin namespace cannot be the main namespace '/'")
        if not stats_interval > 0:
            raise InvalidOption(f"stats_interval must be above 0, not {stats_interval!r}")
        if auth is False:
            self._check: Callable[[str, str], Awaitable[bool]] | None = None
            logger.warning("admin UI on %s without authentication", namespace)
        elif isinstance(auth, Mapping):
            self._check = _password_check(auth)
        else:
            raise InvalidOption("auth must be False or a mapping (see Hub.instrument)")
        self.hub = hub
        self.readonly = readonly
        self.verbose = mode == "development"
        self.mode: Mode = mode
        self.stats_interval = stats_interval
        self.server_id = server_id or f"{socket_module.gethostname()}#{os.getpid()}"
        self._started_at = time.monotonic()
        self._sessions: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._issued: weakref.WeakKeyDictionary[Socket, str] = weakref.WeakKeyDictionary()
        self._pending: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        # Counted since the last server_stats.
        self._connections = 0
        self._disconnections: collections.Counter[str] = collections.Counter()
        engine = hub.engine
        self._io = [engine.messages_in, engine.messages_out, engine.bytes_in, engine.bytes_out]
        # Sessions still on polling: an upgrade is reported (socket_updated) when seen.
        self._polling: set[Connection] = set()
        features = [] if readonly else [*_COMMANDS]
        features.append("AGGREGATED_EVENTS")
        if self.verbose:
            features.append("ALL_EVENTS")
        self.features: list[str] = features
        hub.metrics.describe(
            "tether_admin_ui_dropped_total", "admin UI notifications dropped (queue full)"
        )

        ns = self.namespace = hub.of(namespace)
        # Monitoring is not replayed to a dashboard that reconnects.
        ns.recovery_log = None
        if self._check is not None:
            ns.use(self._authenticate)
        ns.on_connect()(self._on_admin_connect)
        if not readonly:
            ns.on("emit")(self._on_emit)
            ns.on("join")(self._on_join)
            ns.on("leave")(self._on_leave)
            ns.on("_disconnect")(self._on_disconnect)
        hub.on_server_event(SOCKETS_EVENT)(self._local_sockets)
        hub._connection_class = _connection_class(hub._connection_class, self.verbose)
        hub._admin = self

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        """Start reporting (the hub calls this when it starts; idempotent)."""
        loop = asyncio.get_running_loop()
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick())
        if self._pump is None or self._pump.done():
            self._wake = asyncio.Event()
            self._pump = loop.create_task(self._send_pending(self._wake))

    async def _stop(self, flush: float = 2.0) -> None:
        """Stop reporting (the hub is closing), after sending what is queued (the
        disconnects, for the dashboards of other nodes) for at most ``flush`` seconds."""
        if self._pending and self._pump is not None and not self._pump.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush):
                    while self._pending:
                        await asyncio.sleep(0.01)
        tasks = [t for t in (self._ticker, self._pump) if t is not None]
        self._ticker = self._pump = None
        self._wake = None
        self._pending.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ publishing

    def _notify(self, event: str, *args: Any) -> None:
        """Queue a message for every dashboard of the cluster (sent in order by one task,
        so the hooks that call this never wait)."""
        if len(self._pending) >= MAX_PENDING:
            self.hub.metrics.inc("tether_admin_ui_dropped_total")
            return
        self._pending.append((event, args))
        if self._wake is not None:
            self._wake.set()

    async def _send_pending(self, wake: asyncio.Event) -> None:
        while True:
            while self._pending:
                event, args = self._pending.popleft()
                try:
                    await self._publish(event, args)
                except InvalidState:
                    return  # the broker is closed: the hub is going away
                except (BufferFull, TypeError, ValueError) as exc:
                    logger.warning("admin UI: %s not sent: %s", event, exc)
            wake.clear()
            await wake.wait()

    async def _publish(self, event: str, args: Sequence[Any]) -> None:
        """Send to the admin namespace of every node: this node's dashboards at once, the
        others through the broker. Not a durable broadcast (monitoring is not replayed),
        and a dashboard that is behind loses the oldest messages, not its connection."""
        ns = self.namespace
        await ns.local.policy("drop_oldest").emit(event, *args)
        await self.hub._cluster.broadcast(ns.name, event, args, (), (), policy="drop_oldest")

    # ------------------------------------------------------------------ stats

    def _stats(self, *, aggregated: bool) -> dict[str, Any]:
        hub = self.hub
        sessions = hub.engine._sessions
        return {
            "serverId": self.server_id,
            "hostname": socket_module.gethostname(),
            "pid": os.getpid(),
            "uptime": time.monotonic() - self._started_at,
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions.values() if s.transport == "polling"),
            "aggregatedEvents": self._aggregated() if aggregated else [],
            "namespaces": [
                {"name": name, "socketsCount": len(ns.sockets)}
                for name, ns in hub._namespaces.items()
            ],
        }

    def _aggregated(self) -> list[dict[str, Any]]:
        """What happened since the last call, as the dashboard's histograms take it."""
        timestamp = int(time.time()) * 1000
        out: list[dict[str, Any]] = []

        def add(kind: str, count: int, sub: str | None = None) -> None:
            if count > 0:
                item: dict[str, Any] = {"timestamp": timestamp, "type": kind, "count": count}
                if sub is not None:
                    item["subType"] = sub
                out.append(item)

        add("rawConnection", self._connections)
        for reason, count in sorted(self._disconnections.items()):
            add("rawDisconnection", count, reason)
        self._connections = 0
        self._disconnections.clear()
        engine = self.hub.engine
        now = [engine.messages_in, engine.messages_out, engine.bytes_in, engine.bytes_out]
        for kind, before, after in zip(
            ("packetsIn", "packetsOut", "bytesIn", "bytesOut"), self._io, now, strict=True
        ):
            add(kind, after - before)
        self._io = now
        return out

    async def _tick(self) -> None:
        while True:
            try:
                if self.verbose:
                    self._check_upgrades()
                await self._publish("server_stats", (self._stats(aggregated=True),))
            except InvalidState:
                return  # the broker is closed
            except (BufferFull, TypeError, ValueError) as exc:
                logger.warning("admin UI: server_stats not sent: %s", exc)
            await asyncio.sleep(self.stats_interval)

    def _check_upgrades(self) -> None:
        # The engine has no upgrade event: a session that was on polling at the last
        # look and is on WebSocket now has upgraded since.
        for connection in list(self._polling):
            transport = connection.session.transport
            if transport == "polling":
                continue
            self._polling.discard(connection)
            for socket in connection.sockets.values():
                update = {"id": socket.sid, "nsp": socket.namespace.name, "transport": transport}
                self._notify("socket_updated", update)

    # ------------------------------------------------------------------ hooks

    def _opened(self, connection: Connection) -> None:
        self._connections += 1
        if self.verbose and connection.session.transport == "polling":
            self._polling.add(connection)

    def _closed(self, connection: Connection, reason: str) -> None:
        self._disconnections[reason] += 1
        self._polling.discard(connection)

    def _socket_connected(self, socket: Socket) -> None:
        self._notify("socket_connected", serialize_socket(socket), _now())

    def _socket_disconnected(self, socket: Socket, reason: str) -> None:
        nsp, sid, now = socket.namespace.name, socket.sid, _now()
        self._notify("socket_disconnected", nsp, sid, reason, now)
        for room in sorted(socket.rooms):
            self._notify("room_left", nsp, room, sid, now)

    def _joining(self, socket: Socket, rooms: Iterable[str]) -> None:
        """``socket`` is about to join ``rooms`` (called by :meth:`Socket.join`)."""
        if not self.verbose or not socket.connected:
            return  # a socket not yet connected shows its rooms when it connects
        mine = socket.namespace.adapter.rooms_of(socket.sid)
        nsp, sid, now = socket.namespace.name, socket.sid, _now()
        for room in dict.fromkeys(rooms):
            if room not in mine:
                self._notify("room_joined", nsp, room, sid, now)

    def _leaving(self, socket: Socket, rooms: Iterable[str]) -> None:
        """``socket`` is about to leave ``rooms`` (called by :meth:`Socket.leave`)."""
        if not self.verbose or not socket.connected:
            return
        mine = socket.namespace.adapter.rooms_of(socket.sid)
        nsp, sid, now = socket.namespace.name, socket.sid, _now()
        for room in dict.fromkeys(rooms):
            if room in mine and room != sid:
                self._notify("room_left", nsp, room, sid, now)

    def _received(self, socket: Socket, data: Sequence[Any]) -> None:
        if socket.namespace is not self.namespace:
            self._notify("event_received", socket.namespace.name, socket.sid, list(data), _now())

    def _sent(self, socket: Socket, event: str, args: Sequence[Any]) -> None:
        """``socket`` was sent ``event`` (called by :meth:`Socket.emit` and kin)."""
        if self.verbose and socket.namespace is not self.namespace:
            self._notify("event_sent", socket.namespace.name, socket.sid, [event, *args], _now())

    def _broadcast_sent(
        self, ns: Namespace, event: str, args: Sequence[Any], targets: Sequence[Socket]
    ) -> None:
        """A broadcast reached ``targets`` here (called by the namespace's delivery)."""
        if not self.verbose or ns is self.namespace:
            return
        payload, now = [event, *args], _now()
        for socket in targets:
            self._notify("event_sent", ns.name, socket.sid, payload, now)

    # ------------------------------------------------------------------ the namespace

    def _login_valid(self, session_id: Any) -> bool:
        sessions = self._sessions
        now = time.monotonic()
        while sessions:
            oldest, expires = next(iter(sessions.items()))
            if expires > now:
                break
            del sessions[oldest]
        return isinstance(session_id, str) and session_id in sessions

    def _new_login(self) -> str:
        session_id = secrets.token_urlsafe(16)
        self._sessions[session_id] = time.monotonic() + SESSION_TTL
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id

    async def _authenticate(self, socket: Socket, auth: dict[str, Any]) -> None:
        check = self._check
        assert check is not None
        if self._login_valid(auth.get("sessionId")):
            return
        username, password = auth.get("username"), auth.get("password")
        given = isinstance(username, str) and isinstance(password, str)
        if given and await check(str(username), str(password)):
            self._issued[socket] = self._new_login()
            return
        # The dashboard knows this message (its own "invalid credentials" text).
        raise ConnectionRefused("invalid credentials")

    async def _on_admin_connect(self, socket: Socket, auth: dict[str, Any]) -> None:
        session_id = self._issued.pop(socket, None)
        if session_id is not None:
            await socket.emit("session", session_id)
        await socket.emit("config", {"supportedFeatures": self.features})
        if self.verbose:
            await socket.emit("all_sockets", await self._all_sockets())
        # This node's numbers at once (the others come within stats_interval).
        await socket.emit("server_stats", self._stats(aggregated=False))

    def _local_sockets(self, *_: Any) -> list[dict[str, Any]]:
        if not self.verbose:
            return []  # a node in production mode shares no per-socket details
        return [
            serialize_socket(socket)
            for ns in list(self.hub._namespaces.values())
            for socket in list(ns.sockets.values())
        ]

    async def _all_sockets(self) -> list[dict[str, Any]]:
        sockets = self._local_sockets()
        timeout = self.hub.broker.request_timeout
        replies: list[Any]
        try:
            replies = await self.hub.timeout(timeout).server_side_emit_with_ack(SOCKETS_EVENT)
        except AckTimeout as exc:
            replies = list(getattr(exc, "responses", []))
        except (InvalidState, BufferFull) as exc:
            logger.warning("admin UI: other nodes' sockets not fetched: %s", exc)
            replies = []
        for reply in replies:
            if isinstance(reply, list):
                sockets += [s for s in reply if isinstance(s, dict)]
        return sockets

    def _target(self, nsp: Any, target: Any) -> BroadcastOperator | None:
        """The sockets a command is for: a namespace known here, every socket of it or
        those in the room ``target`` (a socket id is a room)."""
        ns = self.hub._namespaces.get(nsp) if isinstance(nsp, str) else None
        if ns is None:
            logger.info("admin UI: command for unknown namespace %r ignored", nsp)
            return None
        if target is None or target == "":
            return ns.to()
        if not isinstance(target, str):
            return None
        return ns.to(target)

    async def _run(self, what: str, action: Awaitable[Any]) -> None:
        try:
            await action
        except (InvalidState, BufferFull, LimitExceeded, TypeError, ValueError) as exc:
            logger.warning("admin UI: %s failed: %s", what, exc)

    async def _on_emit(self, socket: Socket, *args: Any) -> None:
        if len(args) < 3 or not isinstance(args[2], str):
            return
        op = self._target(args[0], args[1])
        if op is not None:
            await self._run("emit", op.emit(args[2], *args[3:]))

    async def _on_join(self, socket: Socket, *args: Any) -> None:
        if len(args) < 2 or not isinstance(args[1], str) or not args[1]:
            return
        op = self._target(args[0], args[2] if len(args) > 2 else None)
        if op is not None:
            await self._run("join", op.sockets_join(args[1]))

    async def _on_leave(self, socket: Socket, *args: Any) -> None:
        if len(args) < 2 or not isinstance(args[1], str) or not args[1]:
            return
        op = self._target(args[0], args[2] if len(args) > 2 else None)
        if op is not None:
            await self._run("leave", op.sockets_leave(args[1]))

    async def _on_disconnect(self, socket: Socket, *args: Any) -> None:
        if len(args) < 2 or not isinstance(args[1], bool):
            return
        op = self._target(args[0], args[2] if len(args) > 2 else None)
        if op is not None:
            await self._run("disconnect", op.disconnect_sockets(args[1]))
