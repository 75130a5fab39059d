"""A Socket.IO namespace: handlers, middlewares, its sockets and their rooms."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..broker import RequestResult
from ..engine.outbox import Policy, check_policy
from ..engine.transport import PreparedMessage
from ..exceptions import InvalidOption
from .cluster import ClusterAdapter
from .operator import BroadcastOperator
from .packets import encode_event
from .recovery import RecoveryLog
from .remote import RemoteSocket, SocketList
from .socket import Socket

if TYPE_CHECKING:
    from ..engine.session import Session
    from .hub import Hub

__all__ = ["Handler", "Middleware", "Namespace"]

Handler = Callable[..., Any]
Middleware = Callable[[Socket, dict[str, Any]], Awaitable[None] | None]


def _fit(func: Handler, given: int) -> Handler:
    """``func`` called with as many of the ``given`` positional arguments as it takes
    (python-socketio users write ``async def connect(sid)`` as often as with ``auth``).

    Raises:
        TypeError: ``func`` takes no positional argument (not even the socket).
    """
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return func  # a builtin or a C callable: call it as documented
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return func
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise TypeError(f"{func!r} must take the socket as its first argument")
    takes = len(positional)
    if takes >= given:
        return func

    def fitted(*args: Any) -> Any:
        return func(*args[:takes])

    functools.update_wrapper(fitted, func)
    return fitted


class Namespace:
    """A Socket.IO namespace: handlers, middlewares, rooms and sockets."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.adapter = ClusterAdapter(hub._cluster, name)
        self._handlers: dict[str, Handler] = {}
        self._catch_all: Handler | None = None
        self._on_connect: list[Handler] = []
        self._on_disconnect: list[Handler] = []
        self._middlewares: list[Middleware] = []
        # This node's log, unless the cluster keeps a shared one (hub._shared).
        self.recovery_log = (
            RecoveryLog(hub.recovery, name, hub._offset_prefix)
            if hub.recovery is not None and hub._shared is None
            else None
        )
        # Shared recovery: the newest log offset delivered here, and the broadcasts held
        # for sockets being recovered (by sid) until their replay is sent.
        self._last_offset: str | None = None
        self._held: dict[str, list[tuple[str, list[str | bytes]]]] = {}
        #: Created on demand by a dynamic namespace (freed when its last socket leaves).
        self.dynamic = False
        self._policy: Policy | None = None

    @property
    def slow_consumer(self) -> Policy | None:
        """The slow-consumer policy of this namespace's emits that choose none (None:
        the hub's). One of ``"wait"``, ``"drop"``, ``"drop_oldest"``, ``"disconnect"``
        (``"coalesce"`` needs a key: choose it per emit). See :mod:`tether.engine.outbox`.

        Raises:
            InvalidOption: an unknown policy, or ``"coalesce"``.
        """
        return self._policy

    @slow_consumer.setter
    def slow_consumer(self, policy: Policy | None) -> None:
        if check_policy(policy) == "coalesce":
            raise InvalidOption("coalesce needs a key: choose it per emit")
        self._policy = policy

    def _policy_for(self, policy: Policy | None) -> Policy:
        """The policy an emit goes out under: its own, else this namespace's, else the
        hub's."""
        return policy or self._policy or self.hub.engine.slow_consumer_policy

    def _inherit(self, parent: Namespace) -> None:
        """Take the handlers and middlewares of a dynamic namespace's parent."""
        self._handlers.update(parent._handlers)
        self._catch_all = parent._catch_all
        self._on_connect = list(parent._on_connect)
        self._on_disconnect = list(parent._on_disconnect)
        self._middlewares = list(parent._middlewares)
        self._policy = parent._policy

    # ------------------------------------------------------------------ registration

    def on(self, event: str) -> Callable[[Handler], Handler]:
        """Register an event handler ``async def(socket, *args)``; ``"*"`` catches all
        (``async def(socket, event, *args)``). A returned value is the acknowledgement
        (a tuple for several arguments)."""

        def decorator(func: Handler) -> Handler:
            if event == "*":
                self._catch_all = func
            elif event == "connect":
                self._on_connect.append(_fit(func, 2))
            elif event == "disconnect":
                self._on_disconnect.append(_fit(func, 2))
            else:
                self._handlers[event] = func
            return func

        return decorator

    def on_connect(self) -> Callable[[Handler], Handler]:
        """Register ``async def(socket, auth)`` called after a socket connected
        (``async def(socket)`` too: the handler gets the arguments it takes)."""
        return self.on("connect")

    def on_disconnect(self) -> Callable[[Handler], Handler]:
        """Register ``async def(socket, reason)`` called after a socket disconnected
        (``async def(socket)`` too)."""
        return self.on("disconnect")

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware ``async def(socket, auth)``; raise :class:`ConnectionRefused`
        to refuse the connection."""
        self._middlewares.append(middleware)
        return middleware

    # ------------------------------------------------------------------ targeting

    def to(self, *rooms: str) -> BroadcastOperator:
        """Target rooms."""
        return BroadcastOperator(self, rooms=set(rooms))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Target everyone but these rooms."""
        return BroadcastOperator(self, except_rooms=set(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """A volatile broadcast."""
        return BroadcastOperator(self, volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """A broadcast to this node only."""
        return BroadcastOperator(self, local=True)

    def policy(self, policy: Policy, key: str | None = None) -> BroadcastOperator:
        """A broadcast with a slow-consumer policy (see :meth:`BroadcastOperator.policy`)."""
        return BroadcastOperator(self).policy(policy, key)

    def coalesce(self, key: str) -> BroadcastOperator:
        """A broadcast of which a client that is behind gets only the latest of ``key``."""
        return BroadcastOperator(self).coalesce(key)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """A broadcast with acknowledgements."""
        return BroadcastOperator(self, timeout=seconds)

    def compress(self, value: bool = True) -> BroadcastOperator:
        """A broadcast with permessage-deflate allowed (True) or not (False)."""
        return BroadcastOperator(self, compress=value)

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket of the namespace."""
        await BroadcastOperator(self).emit(event, *args)

    async def fetch_sockets(self) -> SocketList[Socket | RemoteSocket]:
        """Every socket of the namespace on every live node (see
        :meth:`BroadcastOperator.fetch_sockets`).

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await BroadcastOperator(self).fetch_sockets()

    async def disconnect_sockets(self, close: bool = False) -> RequestResult:
        """Disconnect every socket of the namespace."""
        return await BroadcastOperator(self).disconnect_sockets(close)

    async def sockets_join(self, *rooms: str) -> RequestResult:
        """Make every socket join rooms."""
        return await BroadcastOperator(self).sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str) -> RequestResult:
        """Make every socket leave rooms."""
        return await BroadcastOperator(self).sockets_leave(*rooms)

    # ------------------------------------------------------------------ delivery

    def _match(self, rooms: set[str], except_rooms: set[str]) -> list[Socket]:
        sockets = self.sockets
        sids = self.adapter.match(rooms, except_rooms, sockets.keys())
        return [sockets[s] for s in sids if s in sockets]

    def _broadcast(
        self,
        event: str,
        args: Sequence[Any],
        rooms: set[str],
        except_rooms: set[str],
        volatile: bool,
        compress: bool = True,
        policy: Policy | None = None,
        key: str | None = None,
        offset: str | None = None,
    ) -> list[Session]:
        """Deliver to this node's matching sockets; return the sessions left with a full
        outbox (for a ``wait`` emitter to wait on). ``offset``: a durable broadcast's
        position in the shared recovery log (appended to its arguments)."""
        if volatile:
            policy, key = "drop", None
        policy = self._policy_for(policy)
        log = self.recovery_log
        if offset is not None:
            pieces = self._encode_offset(event, args, offset)
            self._last_offset = offset
            if self._held:
                # Bounded: a socket whose replay would hold more than the log keeps is
                # not recovered (see SharedRecovery.replay).
                limit = self.hub.recovery.max_packets if self.hub.recovery else 0
                for sid in self.adapter.match(rooms, except_rooms, self._held.keys()):
                    held = self._held[sid]
                    if len(held) <= limit:
                        held.append((offset, pieces))
        elif log is not None and policy != "drop":
            offset = log.next_offset()
            pieces = encode_event(self.name, event, [*args, offset])
            log.record(offset, pieces, rooms, except_rooms)
        else:
            pieces = encode_event(self.name, event, args)
        targets = self._match(rooms, except_rooms)
        if not targets:
            return []
        if self.hub._admin is not None:
            self.hub._admin._broadcast_sent(self, event, args, targets)
        if len(pieces) == 1:
            # Encode once: the engine shares one message (and one WebSocket frame, where
            # it can) between every recipient.
            message = PreparedMessage(pieces[0], compress=compress)
            self.hub.engine.count_out(len(targets), len(pieces[0]))
            for socket in targets:
                socket.client.session.send_prepared(message, policy, key)
        else:
            for socket in targets:
                socket._send(pieces, False, compress, policy, key)
        if policy != "wait":
            return []
        return [s for s in (t.client.session for t in targets) if s.full]

    def _encode_offset(
        self, event: str, args: Sequence[Any], offset: str | None
    ) -> list[str | bytes]:
        return encode_event(self.name, event, [*args, offset])

    def _holds_recovery(self) -> bool:
        log = self.recovery_log
        return log is not None and log.stored > 0

    def _store(self, socket: Socket) -> None:
        shared = self.hub._shared
        if shared is not None:
            shared.store(socket)
            return
        log = self.recovery_log
        if log is not None and socket.pid is not None:
            log.store(socket.sid, socket.pid, self.adapter.rooms_of(socket.sid), socket.data)
