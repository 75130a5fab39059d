"""One client connected to one namespace: emitting, acknowledgements, rooms."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.outbox import Policy, check_policy
from ..engine.session import Session
from ..exceptions import AckTimeout, Disconnected, LimitExceeded
from .adapter import RoomChange
from .operator import BroadcastOperator
from .packets import Packet, PacketType, encode, encode_event

if TYPE_CHECKING:
    from .connection import Connection
    from .namespace import Namespace

__all__ = ["Socket"]


@dataclass(slots=True)
class Handshake:
    """What the client sent when it connected to the namespace."""

    auth: dict[str, Any]
    headers: dict[str, str]
    query: dict[str, str]
    address: Any
    time: float
    url: str


class SocketData(dict[str, Any]):
    """A socket's ``data``: a dict that tells the cluster's session store when it
    changes (top-level keys), so a node killed right after the change leaves it
    behind for recovery."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._socket = socket

    def _changed(self) -> None:
        socket = self._socket
        shared = socket.namespace.hub._shared
        if shared is not None:
            shared.touch(socket)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def __ior__(self, other: Any) -> SocketData:  # type: ignore[misc,override]
        super().__ior__(other)
        self._changed()
        return self


class Socket:
    """One client connected to one namespace.

    Attributes:
        sid: this socket's id (also the name of its own room).
        namespace: the :class:`Namespace`.
        handshake: ``auth``, ``headers``, ``query``, ``address``, ``time``, ``url``.
        data: free per-socket data (kept across a recovered reconnection).
        recovered: whether this connection recovered a previous session's state.
        connected: whether the socket is connected.
    """

    def __init__(
        self, namespace: Namespace, client: Connection, sid: str, handshake: Handshake
    ) -> None:
        self.namespace = namespace
        self.client = client
        self.sid = sid
        self.pid: str | None = None
        self.handshake = handshake
        self._data = SocketData(self)
        self.recovered = False
        self.connected = False
        # Shared recovery: the log offset up to which this socket missed nothing.
        self._position: str | None = None
        # Set once the socket has left (disconnected or refused): from then on it must
        # not register anything (rooms) that nothing would ever remove.
        self._gone = False
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._ack_id = 0

    @property
    def data(self) -> dict[str, Any]:
        """Free per-socket data, kept across a recovered reconnection (msgpack- and
        JSON-friendly values when the cluster keeps sessions: its changes are written
        to the session record as they happen; changes inside nested values are
        written at the next refresh)."""
        return self._data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._data = SocketData(self, value)
        self._data._changed()

    @property
    def rooms(self) -> set[str]:
        """The rooms this socket is in (including its own)."""
        return self.namespace.adapter.rooms_of(self.sid)

    @property
    def session(self) -> Session:
        """The Engine.IO session carrying this socket."""
        return self.client.session

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self.client.session.transport

    # ------------------------------------------------------------------ emitting

    def _send(
        self,
        pieces: list[str | bytes],
        volatile: bool = False,
        compress: bool = False,
        policy: Policy | None = None,
        key: str | None = None,
    ) -> None:
        if volatile:
            policy, key = "drop", None
        self._send_as(pieces, compress, self.namespace._policy_for(policy), key)

    def _send_as(
        self, pieces: list[str | bytes], compress: bool, policy: Policy, key: str | None
    ) -> None:
        """:meth:`_send` with the policy resolved."""
        session = self.client.session
        if policy == "drop" and not session.writable:
            session._dropped("drop")
            return
        if len(pieces) > 1 and policy in ("drop_oldest", "coalesce"):
            # A packet with binary attachments is several messages: only as a whole
            # may it be dropped, so it is queued like a disconnect-policy one.
            policy, key = "disconnect", None
        for piece in pieces:
            session.send(piece, compress=compress, policy=policy, key=key)

    async def emit(
        self,
        event: str,
        *args: Any,
        volatile: bool = False,
        compress: bool = True,
        policy: Policy | None = None,
        key: str | None = None,
    ) -> None:
        """Send an event to this client.

        Args:
            event: the event name.
            *args: its arguments (JSON values; bytes become binary attachments).
            volatile: drop the event if the client cannot take it right now (the
                ``"drop"`` policy).
            compress: allow permessage-deflate for it (WebSocket, when the server was
                started with compression and the message is above its threshold);
                False sends it uncompressed.
            policy: the slow-consumer policy if the client is behind (None: the
                namespace's, else the hub's); with ``"wait"`` this waits until the
                client's outbox is under its cap. See :mod:`tether.engine.outbox`.
            key: the coalescing key, with ``policy="coalesce"``.

        Raises:
            ValueError: a reserved event name.
            TypeError: arguments JSON cannot represent.
            InvalidOption: an unknown policy, or a key without ``"coalesce"``.
        """
        if policy is not None or key is not None:
            policy = check_policy(policy, key)
        if self.connected:
            ns = self.namespace
            if volatile:
                resolved: Policy = "drop"
                key = None
            else:
                resolved = policy or ns._policy or ns.hub.engine.slow_consumer_policy
            self._send_as(encode_event(ns.name, event, args), compress, resolved, key)
            if ns.hub._admin is not None:
                ns.hub._admin._sent(self, event, args)
            if resolved == "wait":
                session = self.client.session
                if session.full and not await session.wait_room(session.engine.wait_timeout):
                    session._slow_consumer("wait")

    def emit_nowait(self, event: str, *args: Any) -> None:
        """Like :meth:`emit`, without awaiting (for sync code)."""
        if self.connected:
            self._send(encode_event(self.namespace.name, event, args))
            if self.namespace.hub._admin is not None:
                self.namespace.hub._admin._sent(self, event, args)

    async def send(self, *args: Any) -> None:
        """Emit a ``message`` event."""
        await self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 10.0) -> Any:
        """Send an event and wait for the client's acknowledgement.

        Returns:
            The acknowledgement: its only argument, a tuple for several, None for none.

        Raises:
            AckTimeout: no acknowledgement within ``timeout`` seconds.
            ConnectionError: the socket disconnected first.
        """
        if not self.connected:
            raise Disconnected("socket is disconnected")
        self._ack_id += 1
        ack_id = self._ack_id
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        try:
            self._send(encode_event(self.namespace.name, event, args, ack_id))
            if self.namespace.hub._admin is not None:
                self.namespace.hub._admin._sent(self, event, args)
            try:
                args_back = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                self.namespace.hub.metrics.inc("tether_acks_timed_out_total")
                raise AckTimeout(f"no acknowledgement for {event!r} within {timeout}s") from None
        finally:
            self._acks.pop(ack_id, None)
        if not args_back:
            return None
        return args_back[0] if len(args_back) == 1 else tuple(args_back)

    #: python-socketio's name: emit and wait for the acknowledgement.
    call = emit_with_ack

    def _on_ack(self, ack_id: int, args: list[Any]) -> None:
        fut = self._acks.pop(ack_id, None)
        if fut is not None and not fut.done():
            fut.set_result(args)

    def _fail_acks(self, reason: str) -> None:
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(Disconnected(f"socket disconnected: {reason}"))
                fut.exception()

    # ------------------------------------------------------------------ rooms

    def join(self, *rooms: str) -> RoomChange:
        """Join rooms, on this node at once; await the result for the whole cluster.

        The local room index changes before this returns (a local broadcast reaches the
        socket right away). ``await socket.join(room)`` also waits until the broker has
        confirmed this node's interest in every room that got its first local member
        (bounded by the broker's ``subscribe_timeout``): after it returns, a broadcast
        to the room from any node reaches this socket. Without ``await``, that holds a
        few loop turns later (one SUBSCRIBE round trip). A socket's own sid room is
        subscribed the same way when it connects (without delaying CONNECT or the
        connect handlers): ``await socket.join(socket.sid)`` waits for it, before
        handing the sid to other nodes for ``hub.to(sid)``.

        Raises:
            LimitExceeded: the socket would be in more than the hub's
                ``max_rooms_per_socket`` rooms (its own included); nothing is joined.

        On a socket that has already disconnected (a handler still running after the
        client left), this does nothing: the rooms would never be left again.

        Returns:
            An awaitable of the cluster-wide confirmation (ignoring it is fine).
        """
        if self._gone:
            return RoomChange([])
        adapter = self.namespace.adapter
        limit = self.namespace.hub.max_rooms_per_socket
        if limit is not None:
            mine = adapter.rooms_of(self.sid)
            new = {room for room in rooms if room not in mine}
            if len(mine) + len(new) > limit:
                self.namespace.hub.metrics.inc("tether_joins_refused_total", reason="max_rooms")
                raise LimitExceeded(
                    f"socket {self.sid} would be in {len(mine) + len(new)} rooms"
                    f" (max_rooms_per_socket={limit})"
                )
        if self.namespace.hub._admin is not None:
            self.namespace.hub._admin._joining(self, rooms)
        change = RoomChange(adapter.join(self.sid, rooms))
        shared = self.namespace.hub._shared
        if shared is not None:
            shared.touch(self)
        return change

    def leave(self, *rooms: str) -> None:
        """Leave rooms (a socket cannot leave its own room)."""
        if self.namespace.hub._admin is not None:
            self.namespace.hub._admin._leaving(self, rooms)
        self.namespace.adapter.leave(self.sid, [r for r in rooms if r != self.sid])
        shared = self.namespace.hub._shared
        if shared is not None and not self._gone:
            shared.touch(self)

    def to(self, *rooms: str) -> BroadcastOperator:
        """Broadcast to rooms, except this socket."""
        return BroadcastOperator(self.namespace, rooms=set(rooms), except_rooms={self.sid})

    in_ = to

    @property
    def broadcast(self) -> BroadcastOperator:
        """Broadcast to every socket of the namespace except this one."""
        return BroadcastOperator(self.namespace, except_rooms={self.sid})

    # ------------------------------------------------------------------ closing

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace (``close`` closes the whole connection)."""
        if not self.connected:
            return
        self._send(encode(Packet(PacketType.DISCONNECT, self.namespace.name)))
        await self.client._remove_socket(self, "server namespace disconnect")
        if close:
            self.client.session.close("forced server close", drain=True)

    def __repr__(self) -> str:
        return f"<Socket {self.sid} {self.namespace.name}>"
