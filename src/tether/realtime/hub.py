"""The Socket.IO v5 server: namespaces, rooms, events, acknowledgements, middleware,
broadcasting and connection-state recovery, on the Engine.IO engine.

::

    hub = Hub(cors_origins="*")

    @hub.on("chat")
    async def chat(socket, text):
        await hub.to("lobby").emit("chat", {"from": socket.sid, "text": text})
        return "ok"                      # the acknowledgement, when the client asked for one

    await hub.serve("127.0.0.1", 8000)

The parts live beside this module: :mod:`.socket` (one client in one namespace),
:mod:`.operator` (broadcast targets), :mod:`.namespace`, :mod:`.adapter` (the room
index), :mod:`.cluster` (the hubs of a cluster as one server, through a
:class:`~tether.broker.ClusterBroker`), :mod:`.remote` (other nodes' sockets),
:mod:`.recovery` (connection-state recovery) and :mod:`.connection` (one Engine.IO
session: packet dispatch, connecting, the bound on running handlers).

Several hubs sharing a broker cluster (``Hub(broker=RedisBroker(url, prefix=...))``)
behave as one server: rooms, broadcasts, ``sockets_join``, ``fetch_sockets``,
acknowledgements and server-side events span every live node; ``.local`` keeps an
operation on this node.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import secrets
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..asyncio.limits import Rate
from ..asyncio.opening import Opening
from ..asyncio.options import ConnectionOptions, deflate_options
from ..asyncio.server import DEFAULT_MAX_CONNECTIONS, ProcessRequest, Server
from ..broker import ClusterBroker, RequestResult
from ..broker.base import Broker
from ..broker.memory import MemoryBroker
from ..engine.outbox import Policy, check_policy
from ..engine.server import EngineServer
from ..engine.session import Session
from ..exceptions import AckTimeout, ConnectionRefused, Disconnected, InvalidState
from ..metrics import Metrics
from ..protocol.connection import Side
from ..protocol.deflate import DeflateOptions
from ..protocol.handshake import Request, Response
from . import forwarding as _forwarding
from . import ops as _ops
from .cluster import ClusterAdapter, ClusterLink
from .connection import Connection
from .drain import DrainResult, DrainState
from .drain import check_options as _check_drain_options
from .drain import guard_http as _guard_http
from .drain import guard_upgrade as _guard_upgrade
from .drain import run as _run_drain
from .namespace import Handler, Middleware, Namespace
from .operator import BroadcastOperator
from .recovery import Recovery, RecoveryLog
from .remote import RemoteSocket, SocketList
from .sessions import SharedRecovery
from .socket import Socket

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Literal

    from .admin import AdminUI, Mode

__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ConnectionRefused",
    "DrainResult",
    "Hub",
    "HubServe",
    "HubServer",
    "Namespace",
    "Recovery",
    "Socket",
]


class _EngineHandler:
    """The hub's side of the engine (a :class:`~tether.engine.SessionHandler`).

    Not user API: the engine calls it for every session; each session gets a
    ``hub._connection_class`` that does the Socket.IO work.
    """

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_open(self, session: Session) -> None:
        session.data = self.hub._connection_class(self.hub, session)

    def on_message(self, session: Session, data: str | bytes) -> None:
        connection = session.data
        if connection is not None:
            connection.on_message(data)

    def on_close(self, session: Session, reason: str) -> None:
        connection = session.data
        if connection is not None:
            connection.on_close(reason)


class Hub:
    """The Socket.IO server.

    Args:
        path: the URL path of the engine (``/socket.io/``).
        ping_interval: seconds between Engine.IO pings.
        ping_timeout: seconds to wait for a pong.
        max_payload: the largest message or HTTP body.
        connect_timeout: seconds a client has to connect to a namespace.
        cors_origins: allowed Origins (``"*"``, a list, or None). A list is also enforced
            on both transports: a polling request or WebSocket handshake from another
            Origin (not the server's own) gets 403, the defence against cross-site
            WebSocket hijacking; requests without Origin (non-browser clients) pass.
        cors_credentials: allow credentials in CORS (not with ``"*"``).
        check_origin: False keeps only the CORS headers of ``cors_origins`` (no 403).
        max_sessions: the most open Engine.IO sessions (503 beyond; None: no cap).
        session_rate: new Engine.IO sessions per second per client IP (a
            :class:`~tether.asyncio.limits.Rate`, a number or ``(rate, burst)``; 429
            beyond; None, the default: off).
        message_rate: Engine.IO packets per second one client may send (same forms); a
            client past it is disconnected (``"rate limit"``). None, the default: off.
        transports: allowed transports.
        recovery: connection-state recovery options, or None (off).
        broker: the :class:`~tether.broker.ClusterBroker` the hubs of a cluster share
            (an in-process :class:`~tether.broker.MemoryBroker` by default, alone in its
            cluster; ``RedisBroker(url, prefix=...)`` for several processes). Rooms,
            broadcasts, ``sockets_join``/``sockets_leave``/``disconnect_sockets``,
            ``fetch_sockets``, server-side events and acknowledgements then span every
            node; ``.local`` keeps an operation on this node.
        max_attachments: the most binary attachments per packet.
        max_buffered_packets: the most messages waiting for one client that is behind.
        max_buffered_bytes: the most bytes waiting for one client that is behind (4 MiB).
        slow_consumer_policy: what happens at that cap to an emit that chooses nothing
            (and whose namespace chose nothing): ``"disconnect"`` (the default),
            ``"wait"``, ``"drop"`` or ``"drop_oldest"``; per emit,
            ``hub.to(room).policy(...)`` or ``.coalesce(key)``; per namespace,
            ``hub.of(name).slow_consumer``. See :mod:`tether.engine.outbox`.
        wait_timeout: how long a ``wait`` emit waits for a client that is behind before
            that client is disconnected.
        max_pending_handlers: per-client bound on event handlers still running; past it
            a WebSocket client is not read until half have finished.
        max_namespaces_per_connection: namespaces one client connection may be connected
            or connecting to (so also the most middlewares it can have running at once);
            one more gets a CONNECT_ERROR.
        max_rooms_per_socket: rooms one socket may be in, its own included
            (``join`` raises :class:`~tether.exceptions.LimitExceeded` beyond; None: no
            limit).
        max_connect_refusals: CONNECTs a middleware may refuse on one connection before
            the whole connection is closed (wrong tokens cannot be tried without end;
            one CONNECT per namespace runs at a time).
        fallback: ``async def(request) -> Response`` for other HTTP paths (static files).
        node_id: this node's id in broker envelopes (random by default).
        metrics: where the hub, its engine and its servers count (``hub.metrics``; a new
            :class:`~tether.metrics.Metrics` by default).

    Raises:
        TypeError: ``broker`` is a plain :class:`~tether.broker.Broker`, not a
            :class:`~tether.broker.ClusterBroker`.
    """

    #: What carries the Socket.IO work of one Engine.IO session. Internal seam: a
    #: subclass (tests, instrumentation) may put a :class:`Connection` subclass here.
    _connection_class: type[Connection] = Connection

    #: The drain under way (see :meth:`drain`), None while serving normally.
    _drain: DrainState | None = None

    #: The Admin UI reports (see :meth:`instrument`), None until instrumented.
    _admin: AdminUI | None = None

    def __init__(
        self,
        *,
        path: str = "/socket.io/",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
        connect_timeout: float = 45.0,
        cors_origins: str | Sequence[str] | None = None,
        cors_credentials: bool = False,
        check_origin: bool = True,
        max_sessions: int | None = 50_000,
        session_rate: Rate | float | tuple[float, float] | None = None,
        message_rate: Rate | float | tuple[float, float] | None = None,
        transports: Sequence[str] = ("polling", "websocket"),
        recovery: Recovery | None = None,
        broker: Broker | None = None,
        max_attachments: int = 10,
        max_buffered_packets: int = 1024,
        max_buffered_bytes: int = 4 * 2**20,
        slow_consumer_policy: Policy = "disconnect",
        wait_timeout: float = 10.0,
        max_pending_handlers: int = 256,
        max_namespaces_per_connection: int = 64,
        max_rooms_per_socket: int | None = 10_000,
        max_connect_refusals: int = 10,
        fallback: Callable[[Request], Awaitable[Response]] | None = None,
        node_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.metrics = metrics if metrics is not None else Metrics()
        self.recovery = recovery
        broker = broker if broker is not None else MemoryBroker()
        if not isinstance(broker, ClusterBroker):
            raise TypeError(f"the hub needs a ClusterBroker, not {type(broker).__name__}")
        self.broker: ClusterBroker = broker
        self._cluster = ClusterLink(self, broker)
        self._shared: SharedRecovery | None = self._shared_for(broker)
        self._own_node_id = node_id is not None
        self._server_handlers: dict[str, Handler] = {}
        self.max_attachments = max_attachments
        self.max_pending_handlers = max_pending_handlers
        self.max_namespaces_per_connection = max_namespaces_per_connection
        self.max_rooms_per_socket = max_rooms_per_socket
        self.max_connect_refusals = max_connect_refusals
        self.node_id = node_id or broker.node_id
        self._offset_prefix = secrets.token_hex(4)
        self._engine_handler = _EngineHandler(self)
        self.engine = EngineServer(
            self._engine_handler,
            path=path,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            transports=transports,
            cors_origins=cors_origins,
            cors_credentials=cors_credentials,
            check_origin=check_origin,
            max_sessions=max_sessions,
            session_rate=session_rate,
            message_rate=message_rate,
            max_buffered_packets=max_buffered_packets,
            max_buffered_bytes=max_buffered_bytes,
            slow_consumer_policy=slow_consumer_policy,
            wait_timeout=wait_timeout,
            fallback=fallback,
            metrics=self.metrics,
        )
        self.engine.forward = self._forward_polling
        self._wire_broker()
        self.metrics.describe(
            "tether_acks_pending", "acknowledgements the server waits for", "gauge"
        )
        self.metrics.gauge("tether_acks_pending", self._acks_pending)
        self.metrics.describe("tether_acks_timed_out_total", "acknowledgements that timed out")
        _forwarding.describe_metrics(self)
        self._namespaces: dict[str, Namespace] = {}
        self._dynamic: list[tuple[re.Pattern[str] | Callable[..., Any], Namespace]] = []
        self._servers: list[HubServer] = []
        # Tasks of every connection (handlers, connects, disconnects), awaited on close.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._close_timeout = 10.0
        self.of("/")

    def _acks_pending(self) -> float:
        return float(
            sum(len(s._acks) for ns in self._namespaces.values() for s in ns.sockets.values())
        )

    def _wire_broker(self) -> None:
        broker = self.broker
        # Polling without sticky sessions: sids name their node, other nodes forward.
        self.engine.sid_prefix = _forwarding.sid_prefix(broker.node_id)
        # A forwarded long-poll waits up to pingInterval at its owner: these requests get
        # a budget of their own, bounded by the sessions (one GET and one POST each).
        broker.set_request_limit(_forwarding.KIND, 2 * (self.engine.max_sessions or 50_000))

    def use_broker(self, broker: ClusterBroker) -> None:
        """Put the hub on another broker before it serves (``tether serve --redis`` does
        this to a hub built with the default in-memory one).

        Raises:
            InvalidState: the hub already serves, or has sockets.
            TypeError: ``broker`` is not a :class:`~tether.broker.ClusterBroker`.
        """
        if not isinstance(broker, ClusterBroker):
            raise TypeError(f"the hub needs a ClusterBroker, not {type(broker).__name__}")
        if self._servers or self.engine._sessions:
            raise InvalidState("use_broker() must come before the hub serves")
        self.broker = broker
        self._cluster = ClusterLink(self, broker)
        self._shared = self._shared_for(broker)
        if not self._own_node_id:
            self.node_id = broker.node_id
        for ns in [*self._namespaces.values(), *(parent for _, parent in self._dynamic)]:
            ns.adapter = ClusterAdapter(self._cluster, ns.name)
            if self._shared is not None:
                ns.recovery_log = None
            elif self.recovery is not None and ns.recovery_log is None:
                ns.recovery_log = RecoveryLog(self.recovery, ns.name, self._offset_prefix)
        self._wire_broker()

    def _shared_for(self, broker: ClusterBroker) -> SharedRecovery | None:
        recovery = self.recovery
        if recovery is None or not recovery.shared or not broker.durable:
            return None
        return SharedRecovery(self, recovery, broker)

    async def _forward_polling(self, request: Request, sid: str) -> Response | None:
        return await _forwarding.forward(self, request, sid)

    def expose(self, *, metrics: str | None = "/metrics", healthz: str | None = "/healthz") -> None:
        """Serve Prometheus metrics and a health check on the hub's own port (see
        :mod:`tether.realtime.ops`).

        Raises:
            ImportError: prometheus-client is not installed (``tether[metrics]``).
        """
        _ops.expose(self, metrics=metrics, healthz=healthz)

    def instrument(
        self,
        *,
        auth: Literal[False] | Mapping[str, Any],
        readonly: bool = False,
        namespace: str = "/admin",
        server_id: str | None = None,
        mode: Mode = "development",
        stats_interval: float = 2.0,
    ) -> AdminUI:
        """Show this hub in the Socket.IO Admin UI (the ``@socket.io/admin-ui``
        dashboard), like ``instrument(io, {...})`` of the Node package: an admin
        namespace that reports sockets, rooms, events and server stats, and takes the
        dashboard's join, leave and disconnect commands (see :mod:`tether.realtime.admin`).
        Call it before the hub serves; call it on every node of a cluster.

        Args:
            auth: required: False (no login), or ``{"type": "basic", "username": ...,
                "password": ...}`` with the password itself, or its bcrypt hash when the
                ``bcrypt`` package is installed.
            readonly: refuse the dashboard's commands.
            namespace: the admin namespace.
            server_id: this node's name in the dashboard (``hostname#pid``).
            mode: ``"development"`` (every socket and event) or ``"production"``
                (aggregated stats only).
            stats_interval: seconds between ``server_stats`` reports.

        Returns:
            The :class:`~tether.realtime.admin.AdminUI` (its ``namespace`` is the admin
            namespace).

        Raises:
            InvalidOption: a bad ``auth``, ``mode``, ``namespace`` or ``stats_interval``.
            ImportError: the password is a bcrypt hash and bcrypt is not installed.
            InvalidState: the hub is already instrumented.
        """
        from .admin import AdminUI

        admin = AdminUI(
            self,
            auth=auth,
            readonly=readonly,
            namespace=namespace,
            server_id=server_id,
            mode=mode,
            stats_interval=stats_interval,
        )
        if self._cluster._ready.is_set():
            admin._start()  # start() has run already
        return admin

    # ------------------------------------------------------------------ namespaces

    def of(self, name: str | re.Pattern[str] | Callable[..., Any]) -> Namespace:
        """Get or create a namespace: a name, a compiled regular expression, or a function
        ``(name, auth) -> bool`` (both dynamic: a matching name creates it on demand)."""
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            ns = self._namespaces.get(name)
            if ns is None:
                ns = self._namespaces[name] = Namespace(self, name)
            return ns
        parent = Namespace(self, f"<dynamic {getattr(name, 'pattern', name)!r}>")
        self._dynamic.append((name, parent))
        return parent

    async def _namespace_for(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        ns = self._namespaces.get(name)
        if ns is not None:
            return ns
        for matcher, parent in self._dynamic:
            if isinstance(matcher, re.Pattern):
                ok = matcher.fullmatch(name) is not None
            else:
                result = matcher(name, auth)
                ok = bool(await result) if inspect.isawaitable(result) else bool(result)
            if ok:
                ns = self.of(name)
                ns._inherit(parent)
                ns.dynamic = True
                return ns
        return None

    @property
    def namespaces(self) -> dict[str, Namespace]:
        """The namespaces by name (a copy): the static ones and the dynamic ones that
        have sockets now."""
        return dict(self._namespaces)

    def _release(self, ns: Namespace) -> None:
        """Forget a dynamic namespace left without sockets: clients can create them by
        name, so keeping every one would grow without bound. Its handlers live on in its
        parent; one holding recovery sessions is kept until a later disconnect."""
        if not ns.dynamic or ns.sockets or ns._holds_recovery():
            return
        if self._namespaces.get(ns.name) is ns:
            del self._namespaces[ns.name]

    @property
    def sockets(self) -> dict[str, Socket]:
        """Sockets of the main namespace by sid."""
        return self._namespaces["/"].sockets

    # shortcuts to the main namespace
    def on(self, event: str, namespace: str = "/") -> Callable[[Handler], Handler]:
        """Register an event handler on a namespace (see :meth:`Namespace.on`)."""
        return self.of(namespace).on(event)

    def event(self, handler: Handler | None = None, *, namespace: str = "/") -> Any:
        """Register a handler under its function's name (python-socketio's
        ``@sio.event``): ``async def chat(socket, text)`` handles ``"chat"``; the names
        ``connect`` and ``disconnect`` register those handlers. ``@hub.event`` and
        ``@hub.event(namespace="/chat")`` both work.

        Raises:
            TypeError: ``handler`` has no name (a lambda).
        """

        def register(func: Handler) -> Handler:
            name = getattr(func, "__name__", "")
            if not name or name == "<lambda>":
                raise TypeError("@hub.event needs a named function; use hub.on(event)")
            return self.of(namespace).on(name)(func)

        return register(handler) if handler is not None else register

    async def call(
        self, event: str, *args: Any, to: str, namespace: str = "/", timeout: float = 10.0
    ) -> Any:
        """Emit ``event`` to the socket ``to`` (its sid) on this node and wait for its
        acknowledgement (python-socketio's ``sio.call``).

        Raises:
            Disconnected: no such socket here (or it disconnected first).
            AckTimeout: no acknowledgement within ``timeout`` seconds.
        """
        socket = self.of(namespace).sockets.get(to)
        if socket is None:
            raise Disconnected(f"no socket {to!r} in {namespace!r} on this node")
        return await socket.emit_with_ack(event, *args, timeout=timeout)

    def on_connect(self, namespace: str = "/") -> Callable[[Handler], Handler]:
        """Register a connect handler."""
        return self.of(namespace).on_connect()

    def on_disconnect(self, namespace: str = "/") -> Callable[[Handler], Handler]:
        """Register a disconnect handler."""
        return self.of(namespace).on_disconnect()

    def use(self, middleware: Middleware, namespace: str = "/") -> Middleware:
        """Add a middleware to a namespace."""
        return self.of(namespace).use(middleware)

    def to(self, *rooms: str, namespace: str = "/") -> BroadcastOperator:
        """Target rooms of a namespace."""
        return self.of(namespace).to(*rooms)

    in_ = to

    def except_(self, *rooms: str, namespace: str = "/") -> BroadcastOperator:
        """Target everyone but these rooms."""
        return self.of(namespace).except_(*rooms)

    def timeout(self, seconds: float, namespace: str = "/") -> BroadcastOperator:
        """A broadcast with acknowledgements (see :meth:`BroadcastOperator.emit_with_ack`)."""
        return self.of(namespace).timeout(seconds)

    def compress(self, value: bool = True, namespace: str = "/") -> BroadcastOperator:
        """A broadcast with permessage-deflate allowed (True) or not (False)."""
        return self.of(namespace).compress(value)

    def policy(
        self, policy: Policy, key: str | None = None, namespace: str = "/"
    ) -> BroadcastOperator:
        """A broadcast with a slow-consumer policy (see
        :meth:`BroadcastOperator.policy`)."""
        return BroadcastOperator(self.of(namespace)).policy(policy, key)

    def coalesce(self, key: str, namespace: str = "/") -> BroadcastOperator:
        """A broadcast of which a client that is behind gets only the latest of ``key``."""
        return BroadcastOperator(self.of(namespace)).coalesce(key)

    @property
    def volatile(self) -> BroadcastOperator:
        """A volatile broadcast on the main namespace."""
        return self.of("/").volatile

    @property
    def local(self) -> BroadcastOperator:
        """A broadcast to this node only, on the main namespace."""
        return self.of("/").local

    async def emit(
        self,
        event: str,
        *args: Any,
        to: str | Sequence[str] | None = None,
        except_: str | Sequence[str] | None = None,
        namespace: str = "/",
        volatile: bool = False,
        local: bool = False,
        policy: Policy | None = None,
        key: str | None = None,
    ) -> None:
        """Broadcast an event (to rooms, except rooms, in a namespace), with a
        slow-consumer ``policy`` (and its coalescing ``key``) if given.

        Raises:
            InvalidOption: an unknown policy, or a key without ``"coalesce"``.
        """
        rooms = {to} if isinstance(to, str) else set(to or ())
        excluded = {except_} if isinstance(except_, str) else set(except_ or ())
        op = BroadcastOperator(
            self.of(namespace),
            rooms,
            excluded,
            volatile=volatile,
            local=local,
            policy=check_policy(policy, key),
            key=key,
        )
        await op.emit(event, *args)

    # ------------------------------------------------------------------ broker

    async def fetch_sockets(self, namespace: str = "/") -> SocketList[Socket | RemoteSocket]:
        """Every socket of a namespace on every live node (see
        :meth:`BroadcastOperator.fetch_sockets`).

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self.of(namespace).fetch_sockets()

    async def sockets_join(self, *rooms: str, namespace: str = "/") -> RequestResult:
        """Make every socket of a namespace, on every live node, join rooms.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self.of(namespace).sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str, namespace: str = "/") -> RequestResult:
        """Make every socket of a namespace, on every live node, leave rooms.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self.of(namespace).sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False, namespace: str = "/") -> RequestResult:
        """Disconnect every socket of a namespace on every live node.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self.of(namespace).disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> None:
        """Call the :meth:`on_server_event` handler of ``event`` on every other live
        node; returns when they ran (or the broker's ``request_timeout`` passed). Use
        ``await hub.timeout(s).server_side_emit_with_ack(...)`` for their replies.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        await self._cluster.server_side_emit(self.of(namespace), event, args)

    def on_server_event(self, event: str) -> Callable[[Handler], Handler]:
        """Register ``async def(*args)`` for ``event`` sent by another node's
        :meth:`server_side_emit` (or an emitter's ``serverSideEmit``); its return value
        is the reply to :meth:`server_side_emit_with_ack`."""

        def decorator(func: Handler) -> Handler:
            self._server_handlers[event] = func
            return func

        return decorator

    async def _server_event(self, ns: Namespace, event: str, args: list[Any]) -> Any:
        handler = self._server_handlers.get(event)
        if handler is None:
            return None
        result = handler(*args)
        return await result if inspect.isawaitable(result) else result

    async def start(self) -> None:
        """Start the cluster broker (called by :meth:`serve`); idempotent.

        Raises:
            InvalidState: the broker was closed.
        """
        await self._cluster.start()
        if self._admin is not None:
            self._admin._start()

    # ------------------------------------------------------------------ serving

    def serve(
        self,
        host: str | Sequence[str] | None = "127.0.0.1",
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
        backlog: int = 1024,
        reuse_port: bool | None = None,
        compression: str | DeflateOptions | None = None,
        process_request: ProcessRequest | None = None,
        origins: Sequence[str | None] | None = None,
        write_limit: int = 65536,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        max_header_size: int = 16384,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: int | None = None,
        connection_rate: Rate | float | tuple[float, float] | None = None,
    ) -> HubServe:
        """Serve the hub on ``host:port`` with tether's server (both transports, one port).

        Await it for the running :class:`HubServer`, or use it as an async context
        manager that shuts the hub down on exit::

            async with hub.serve("127.0.0.1", 8000) as server:
                await stop.wait()

        Args:
            host: the interface(s) to listen on.
            port: the TCP port (0 picks a free one; see ``server.port``).
            ssl: an SSLContext to serve ``https://`` and ``wss://``.
            sock: an already bound socket to serve on instead of ``host:port``.
            backlog: the listen backlog.
            reuse_port: set SO_REUSEPORT (several processes on one port).
            compression: ``"deflate"`` to offer permessage-deflate (then
                ``emit(..., compress=False)`` opts a message out), a
                :class:`~tether.protocol.deflate.DeflateOptions`, or None (off, the
                default, as in socket.io).
            process_request: replaces the engine's check of WebSocket requests
                (``request -> Response | None``).
            origins: allowed Origin values of WebSocket requests (None: any).
            write_limit: each connection's outgoing buffer high-water mark, in bytes.
            open_timeout: seconds for a client to send a complete request.
            close_timeout: seconds to wait for closing handshakes and handlers.
            max_header_size: the largest request head, in bytes.
            max_connections: open TCP connections, polling and WebSocket alike, counted
                from accept (10,000; None: no limit); past it 503 with ``Retry-After``,
                or close 1013 on a WebSocket.
            max_connections_per_ip: open connections per client IP (None: no limit);
                past it 429, or close 1013.
            connection_rate: new connections per second per client IP (a
                :class:`~tether.asyncio.limits.Rate`, a number or ``(rate, burst)``;
                None: no limit); past it 429 with ``Retry-After``, or close 1013.

        Raises:
            OSError: the address cannot be bound (when awaited or entered).
        """
        engine = self.engine
        options = ConnectionOptions(
            Side.SERVER,
            deflate_options(compression, Side.SERVER),
            max_size=engine.max_payload,
            write_limit=write_limit,
            ping_interval=None,  # Engine.IO has its own heartbeat
            open_timeout=open_timeout,
            close_timeout=close_timeout,
        )
        server = HubServer(
            self,
            engine.handle_websocket,
            options,
            http_handler=engine.handle_http,
            process_request=process_request or engine.process_request,
            origins=origins,
            max_header_size=max_header_size,
            max_body_size=engine.max_payload + 65536,
            max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip,
            connection_rate=connection_rate,
            metrics=self.metrics,
        )
        return HubServe(self, server, (host, port, ssl, sock, backlog, reuse_port))

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` began: new Engine.IO handshakes are refused."""
        return self._drain is not None

    async def drain(
        self,
        period: float = 10.0,
        *,
        grace: float = 5.0,
        handler_timeout: float = 10.0,
        retry_after: int = 5,
        rate: float = 200.0,
        rng: random.Random | None = None,
    ) -> DrainResult:
        """Move this node's clients to the other nodes before a deploy stops it.

        From the call on, new Engine.IO handshakes are refused with HTTP 503 and
        ``Retry-After: retry_after`` (a polling GET without sid, and a WebSocket
        handshake, before the upgrade), so a load balancer sends them elsewhere;
        :func:`tether.realtime.drain.readiness` answers a readiness check with 503 too.
        Each open session is closed at its own random moment within ``period`` seconds:
        reading from it stops, its running handlers get up to ``handler_timeout``
        seconds to finish (their acknowledgements are sent), then its Engine.IO
        transport is closed. The client sees ``"transport close"``, not a Socket.IO
        server disconnect, so tether's client and the official ``socket.io-client``
        reconnect by themselves (with their backoff and jitter) through the load
        balancer to another node. An event acknowledged by this node was handled; one
        not yet read is never handled here, and comes again from a client that resends
        unacknowledged emits (``Client(retries=N)``, ``socket.io-client``'s
        ``retries``). The hub's disconnect handlers get ``"transport close"``.
        Connection-state recovery is per node: broadcasts sent while a client moves are
        not replayed by the other node.

        In a deploy, on SIGTERM (``tether demo`` does this)::

            await hub.drain(period=20)   # below the orchestrator's grace period
            await hub.close()

        Counted in ``hub.metrics``: ``tether_drain_total`` (drains begun),
        ``tether_drain_closed_total`` (sessions closed), ``tether_drain_refused_total``
        (handshakes refused, by ``transport``) and the gauge ``tether_draining``.

        Args:
            period: seconds over which the open sessions are closed (0: all at once).
            rate: closes per second the spreading need not go below: with few
                sessions the window shrinks to ``sessions / rate`` seconds (200 by
                default: 2,000 clients take 10 s, 10 clients 50 ms).
            grace: seconds after ``period`` to wait for sessions to be gone (a polling
                client takes its close packet with its next GET) and closes still
                waiting for handlers.
            handler_timeout: seconds a session's running handlers may take before its
                transport is closed anyway (and, at the end, the hub's remaining ones).
            retry_after: the ``Retry-After`` of the refusals, in seconds.
            rng: the random source of the schedule (seed it in tests).

        Returns:
            What the drain did; it returns when every session is gone or
            ``period + grace`` (plus a bounded wait for handlers) has passed. The hub
            then still serves (refusing new clients) until :meth:`close`.

        Raises:
            InvalidOption: a negative duration, or ``rate`` not above 0.
            InvalidState: a drain is already under way.
        """
        from ..exceptions import InvalidState

        _check_drain_options(period, grace, handler_timeout, retry_after, rate)
        if self._drain is not None:
            raise InvalidState("the hub is already draining")
        state = self._drain = DrainState(retry_after)
        metrics = self.metrics
        metrics.describe("tether_drain_total", "Drains begun (Hub.drain)")
        metrics.describe("tether_drain_closed_total", "Sessions closed by a drain")
        metrics.describe("tether_drain_refused_total", "Handshakes refused while draining")
        metrics.describe("tether_draining", "1 while the hub drains", "gauge")
        metrics.inc("tether_drain_total")
        metrics.gauge("tether_draining", lambda: 1.0 if self._drain is not None else 0.0)
        return await _run_drain(
            self, state, period, grace, handler_timeout, rate, rng or random.Random()
        )

    async def close(self) -> None:
        """Shut the hub down: disconnect every client, stop every server started by
        :meth:`serve` (waiting for them), and leave the broker."""
        self._close_sessions()
        for server in list(self._servers):
            server.close()
        for server in list(self._servers):
            await server.wait_closed()
        await self._finish_close()

    def _close_sessions(self) -> None:
        for session in list(self.engine._sessions.values()):
            session.close("server shutting down")

    async def _finish_close(self) -> None:
        if self._servers:
            return  # another server still serves this hub
        self.engine.release()
        if self._tasks:
            # Disconnect handlers (and handlers still running), bounded like the server's.
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._close_timeout)
            for task in pending:
                task.cancel()
        if self._admin is not None:
            await self._admin._stop()  # after the disconnects, which it reports
        # The sockets are gone, so is their interest: wait for the UNSUBSCRIBEs.
        await self._cluster.drain()
        if self._shared is not None:
            await self._shared.close()
        for ns in self._namespaces.values():
            if ns.recovery_log is not None:
                ns.recovery_log.close()


class HubServer(Server):
    """The :class:`tether.Server` of a hub: closing it disconnects the hub's clients
    (``"server shutting down"``) and ``wait_closed()`` returns once the hub is down too.
    """

    def __init__(self, hub: Hub, handler: Any, options: ConnectionOptions, **server: Any) -> None:
        # While the hub drains, new handshakes are refused here, before the engine.
        if server.get("http_handler") is not None:
            server["http_handler"] = _guard_http(hub, server["http_handler"])
        if server.get("process_request") is not None:
            server["process_request"] = _guard_upgrade(hub, server["process_request"])
        super().__init__(handler, options, **server)
        self.hub = hub

    def close(self, *, close_connections: bool = True) -> None:
        """Disconnect the hub's clients, stop accepting connections, close open ones."""
        self.hub._close_sessions()
        super().close(close_connections=close_connections)

    async def wait_closed(self) -> None:
        """Wait until the server is closed and, when it was the hub's last, the hub too."""
        await super().wait_closed()
        hub = self.hub
        if self in hub._servers:
            hub._servers.remove(self)
            await hub._finish_close()


class HubServe(Opening[HubServer]):
    """What :meth:`Hub.serve` returns: await it, or ``async with`` it."""

    def __init__(
        self,
        hub: Hub,
        server: HubServer,
        start: tuple[Any, int, Any, Any, int, bool | None],
    ) -> None:
        self._hub = hub
        self._server = server
        self._start = start

    async def _create(self) -> HubServer:
        host, port, ssl, sock, backlog, reuse_port = self._start
        hub = self._hub
        await hub.start()
        await self._server.start(
            host, port, ssl=ssl, sock=sock, backlog=backlog, reuse_port=reuse_port
        )
        hub._servers.append(self._server)
        hub._close_timeout = max(hub._close_timeout, self._server.options.close_timeout)
        return self._server

    async def _dispose(self, value: HubServer, exc: BaseException | None) -> None:
        value.close()
        await value.wait_closed()
