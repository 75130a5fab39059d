"""The Socket.IO v5 server: namespaces, rooms, events, acknowledgements, middleware,
broadcasting and connection-state recovery, on the Engine.IO engine.

::

    hub = Hub(cors_origins="*")

    @hub.on("chat")
    async def chat(socket, text):
        await hub.to("lobby").emit("chat", {"from": socket.sid, "text": text})
        return "ok"                      # the acknowledgement, when the client asked for one

    await hub.serve("127.0.0.1", 8000)
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..asyncio.connection import WebSocket
from ..asyncio.server import Server, serve
from ..broker.base import Broker, Envelope
from ..broker.memory import MemoryBroker
from ..engine.server import EngineServer, Session
from ..exceptions import AckTimeout, ConnectionRefused, Disconnected
from ..protocol.connection import encode_server_frame
from ..protocol.handshake import Request, Response
from .packets import (
    Decoder,
    Packet,
    PacketType,
    SocketIOPacketError,
    encode,
    encode_ack,
    encode_event,
)

__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ConnectionRefused",
    "Hub",
    "Namespace",
    "Recovery",
    "Socket",
]

logger = logging.getLogger("tether.realtime")

Handler = Callable[..., Any]
Middleware = Callable[["Socket", dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Recovery:
    """Connection-state recovery options (compatible with the official client).

    Attributes:
        max_disconnection_duration: seconds a disconnected socket's state is kept.
        skip_middlewares: skip the middlewares when a session is recovered.
        max_packets: the most broadcast packets kept for replay (oldest dropped first).
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_packets: int = 10_000


@dataclass(slots=True)
class _Handshake:
    auth: dict[str, Any]
    headers: dict[str, str]
    query: dict[str, str]
    address: Any
    time: float
    url: str


def _ack_value(result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


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
        self, namespace: Namespace, client: _Client, sid: str, handshake: _Handshake
    ) -> None:
        self.namespace = namespace
        self.client = client
        self.sid = sid
        self.pid: str | None = None
        self.handshake = handshake
        self.data: dict[str, Any] = {}
        self.recovered = False
        self.connected = False
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._ack_id = 0

    @property
    def rooms(self) -> set[str]:
        """The rooms this socket is in (including its own)."""
        return set(self.namespace._socket_rooms.get(self.sid, ()))

    @property
    def session(self) -> Session:
        """The Engine.IO session carrying this socket."""
        return self.client.session

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self.client.session.transport

    # ------------------------------------------------------------------ emitting

    def _send(self, pieces: list[str | bytes], volatile: bool = False) -> None:
        session = self.client.session
        if volatile and not self.client.writable():
            return
        for piece in pieces:
            session.send(piece)

    async def emit(
        self, event: str, *args: Any, volatile: bool = False, compress: bool = True
    ) -> None:
        """Send an event to this client.

        Raises:
            ValueError: a reserved event name.
            TypeError: arguments JSON cannot represent.
        """
        if self.connected:
            self._send(encode_event(self.namespace.name, event, args), volatile)

    def emit_nowait(self, event: str, *args: Any) -> None:
        """Like :meth:`emit`, without awaiting (for sync code)."""
        if self.connected:
            self._send(encode_event(self.namespace.name, event, args))

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
            try:
                args_back = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise AckTimeout(f"no acknowledgement for {event!r} within {timeout}s") from None
        finally:
            self._acks.pop(ack_id, None)
        if not args_back:
            return None
        return args_back[0] if len(args_back) == 1 else tuple(args_back)

    # ------------------------------------------------------------------ rooms

    def join(self, *rooms: str) -> None:
        """Join rooms."""
        self.namespace._join(self.sid, rooms)

    def leave(self, *rooms: str) -> None:
        """Leave rooms (a socket cannot leave its own room)."""
        self.namespace._leave(self.sid, [r for r in rooms if r != self.sid])

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


class BroadcastOperator:
    """A broadcast target: rooms to include and exclude, and flags. Immutable-ish."""

    def __init__(
        self,
        namespace: Namespace,
        rooms: set[str] | None = None,
        except_rooms: set[str] | None = None,
        *,
        volatile: bool = False,
        local: bool = False,
        timeout: float | None = None,
    ) -> None:
        self._ns = namespace
        self._rooms = rooms or set()
        self._except = except_rooms or set()
        self._volatile = volatile
        self._local = local
        self._timeout = timeout

    def _copy(self, **changes: Any) -> BroadcastOperator:
        values: dict[str, Any] = {
            "rooms": set(self._rooms),
            "except_rooms": set(self._except),
            "volatile": self._volatile,
            "local": self._local,
            "timeout": self._timeout,
        }
        values.update(changes)
        rooms = values.pop("rooms")
        except_rooms = values.pop("except_rooms")
        return BroadcastOperator(self._ns, rooms, except_rooms, **values)

    def to(self, *rooms: str) -> BroadcastOperator:
        """Also target these rooms."""
        return self._copy(rooms=self._rooms | set(rooms))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Exclude sockets in these rooms."""
        return self._copy(except_rooms=self._except | set(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the event for clients that cannot take it right now."""
        return self._copy(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only this node's sockets (no fan-out through the broker)."""
        return self._copy(local=True)

    def compress(self, value: bool = True) -> BroadcastOperator:
        """Accepted for API compatibility; frames are sent uncompressed."""
        return self

    def timeout(self, seconds: float) -> BroadcastOperator:
        """The acknowledgement timeout of :meth:`emit_with_ack`."""
        return self._copy(timeout=seconds)

    def _targets(self) -> list[Socket]:
        return self._ns._match(self._rooms, self._except)

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to every matching socket (encoded once)."""
        self._ns._broadcast(event, args, self._rooms, self._except, self._volatile)
        if not self._local:
            await self._ns.hub._publish(
                "broadcast",
                self._ns.name,
                {
                    "event": event,
                    "args": list(args),
                    "rooms": sorted(self._rooms),
                    "except": sorted(self._except),
                    "volatile": self._volatile,
                },
            )

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Send an event to every matching local socket and gather their acknowledgements.

        Returns:
            One response per socket that answered in time (its only argument, or a tuple).

        Raises:
            AckTimeout: some sockets did not answer within the timeout (``.responses``
                on the exception holds those that did).
        """
        timeout = self._timeout if self._timeout is not None else 10.0
        sockets = self._targets()
        results = await asyncio.gather(
            *(s.emit_with_ack(event, *args, timeout=timeout) for s in sockets),
            return_exceptions=True,
        )
        responses = [r for r in results if not isinstance(r, BaseException)]
        if len(responses) != len(results):
            exc = AckTimeout(
                f"{len(results) - len(responses)} of {len(results)} clients did not acknowledge"
            )
            exc.responses = responses  # type: ignore[attr-defined]
            raise exc
        return responses

    async def fetch_sockets(self) -> list[Socket]:
        """The matching sockets (this node)."""
        return self._targets()

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the matching sockets."""
        for socket in self._targets():
            await socket.disconnect(close)
        if not self._local:
            await self._ns.hub._publish(
                "disconnect",
                self._ns.name,
                {"rooms": sorted(self._rooms), "except": sorted(self._except), "close": close},
            )

    async def sockets_join(self, *rooms: str) -> None:
        """Make the matching sockets join rooms."""
        for socket in self._targets():
            socket.join(*rooms)
        if not self._local:
            await self._ns.hub._publish(
                "join",
                self._ns.name,
                {
                    "rooms": sorted(self._rooms),
                    "except": sorted(self._except),
                    "target": list(rooms),
                },
            )

    async def sockets_leave(self, *rooms: str) -> None:
        """Make the matching sockets leave rooms."""
        for socket in self._targets():
            socket.leave(*rooms)
        if not self._local:
            await self._ns.hub._publish(
                "leave",
                self._ns.name,
                {
                    "rooms": sorted(self._rooms),
                    "except": sorted(self._except),
                    "target": list(rooms),
                },
            )


@dataclass(slots=True)
class _Stored:
    """A disconnected socket's state, kept for recovery."""

    sid: str
    pid: str
    rooms: set[str]
    data: dict[str, Any]
    expires: float


class Namespace:
    """A Socket.IO namespace: handlers, middlewares, rooms and sockets."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self._handlers: dict[str, Handler] = {}
        self._catch_all: Handler | None = None
        self._on_connect: list[Handler] = []
        self._on_disconnect: list[Handler] = []
        self._middlewares: list[Middleware] = []
        self._rooms: dict[str, set[str]] = {}
        self._socket_rooms: dict[str, set[str]] = {}
        # recovery
        self._log: collections.deque[tuple[str, list[Any], set[str], set[str], str]] = (
            collections.deque()
        )
        self._log_index: dict[str, int] = {}
        self._log_base = 0
        self._stored: dict[str, _Stored] = {}

    # ------------------------------------------------------------------ registration

    def on(self, event: str) -> Callable[[Handler], Handler]:
        """Register an event handler ``async def(socket, *args)``; ``"*"`` catches all
        (``async def(socket, event, *args)``). A returned value is the acknowledgement
        (a tuple for several arguments)."""

        def decorator(func: Handler) -> Handler:
            if event == "*":
                self._catch_all = func
            elif event == "connect":
                self._on_connect.append(func)
            elif event == "disconnect":
                self._on_disconnect.append(func)
            else:
                self._handlers[event] = func
            return func

        return decorator

    def on_connect(self) -> Callable[[Handler], Handler]:
        """Register ``async def(socket, auth)`` called after a socket connected."""
        return self.on("connect")

    def on_disconnect(self) -> Callable[[Handler], Handler]:
        """Register ``async def(socket, reason)`` called after a socket disconnected."""
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

    def timeout(self, seconds: float) -> BroadcastOperator:
        """A broadcast with acknowledgements."""
        return BroadcastOperator(self, timeout=seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket of the namespace."""
        await BroadcastOperator(self).emit(event, *args)

    async def fetch_sockets(self) -> list[Socket]:
        """Every socket of the namespace (this node)."""
        return list(self.sockets.values())

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace."""
        await BroadcastOperator(self).disconnect_sockets(close)

    async def sockets_join(self, *rooms: str) -> None:
        """Make every socket join rooms."""
        await BroadcastOperator(self).sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str) -> None:
        """Make every socket leave rooms."""
        await BroadcastOperator(self).sockets_leave(*rooms)

    # ------------------------------------------------------------------ rooms (local adapter)

    def _join(self, sid: str, rooms: Iterable[str]) -> None:
        mine = self._socket_rooms.setdefault(sid, set())
        for room in rooms:
            mine.add(room)
            self._rooms.setdefault(room, set()).add(sid)

    def _leave(self, sid: str, rooms: Iterable[str]) -> None:
        mine = self._socket_rooms.get(sid)
        for room in rooms:
            if mine is not None:
                mine.discard(room)
            members = self._rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self._rooms[room]

    def _leave_all(self, sid: str) -> None:
        self._leave(sid, list(self._socket_rooms.get(sid, ())))
        self._socket_rooms.pop(sid, None)

    def _match(self, rooms: set[str], except_rooms: set[str]) -> list[Socket]:
        excluded: set[str] = set()
        for room in except_rooms:
            excluded |= self._rooms.get(room, set())
        if rooms:
            sids: set[str] = set()
            for room in rooms:
                sids |= self._rooms.get(room, set())
        else:
            sids = set(self.sockets)
        return [self.sockets[s] for s in sids - excluded if s in self.sockets]

    def _broadcast(
        self,
        event: str,
        args: Sequence[Any],
        rooms: set[str],
        except_rooms: set[str],
        volatile: bool,
    ) -> None:
        recovery = self.hub.recovery
        if recovery is not None and not volatile:
            offset = self._record(event, list(args), rooms, except_rooms)
            pieces = encode_event(self.name, event, [*args, offset])
        else:
            pieces = encode_event(self.name, event, args)
        targets = self._match(rooms, except_rooms)
        if not targets:
            return
        if len(pieces) == 1:
            # Encode once: the same Engine.IO frame for every WebSocket recipient.
            text = pieces[0]
            assert isinstance(text, str)
            frame = "4" + text
            wire: bytes | None = None
            for socket in targets:
                client = socket.client
                if volatile and not client.writable():
                    continue
                session = client.session
                if session.ws is None:
                    session.send(text)
                elif session.can_write_directly():
                    # The WebSocket frame is encoded once and its bytes shared.
                    if wire is None:
                        wire = encode_server_frame(frame)
                    session.write_wire(wire)
                else:
                    session.send_frame(frame)
        else:
            for socket in targets:
                socket._send(pieces, volatile)

    # ------------------------------------------------------------------ recovery

    def _record(self, event: str, args: list[Any], rooms: set[str], except_rooms: set[str]) -> str:
        recovery = self.hub.recovery
        assert recovery is not None
        offset = f"{self.hub._offset_prefix}-{self._log_base + len(self._log)}"
        self._log.append((event, args, set(rooms), set(except_rooms), offset))
        self._log_index[offset] = self._log_base + len(self._log) - 1
        now = time.monotonic()
        self._stored_expire(now)
        while len(self._log) > recovery.max_packets:
            old = self._log.popleft()
            self._log_index.pop(old[4], None)
            self._log_base += 1
        return offset

    def _stored_expire(self, now: float) -> None:
        for key in [k for k, v in self._stored.items() if v.expires < now]:
            del self._stored[key]

    def _store(self, socket: Socket) -> None:
        recovery = self.hub.recovery
        if recovery is None or socket.pid is None:
            return
        self._stored[socket.pid] = _Stored(
            socket.sid,
            socket.pid,
            set(self._socket_rooms.get(socket.sid, ())),
            socket.data,
            time.monotonic() + recovery.max_disconnection_duration,
        )

    def _restore(self, auth: dict[str, Any]) -> tuple[_Stored, list[list[str | bytes]]] | None:
        pid = auth.get("pid")
        offset = auth.get("offset")
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None
        self._stored_expire(time.monotonic())
        stored = self._stored.pop(pid, None)
        if stored is None:
            return None
        index = self._log_index.get(offset)
        if index is None:
            return None
        missed: list[list[str | bytes]] = []
        for event, args, rooms, except_rooms, off in list(self._log)[index - self._log_base + 1 :]:
            if rooms and not rooms & stored.rooms:
                continue
            if except_rooms & stored.rooms:
                continue
            missed.append(encode_event(self.name, event, [*args, off]))
        return stored, missed


class _Client:
    """One Engine.IO session and the namespace sockets it carries."""

    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.session = session
        self.decoder = Decoder(max_attachments=hub.max_attachments)
        self.sockets: dict[str, Socket] = {}
        self.connect_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            hub.connect_timeout, self._connect_timeout
        )
        self.tasks: set[asyncio.Task[Any]] = set()
        self.held = False
        self.loop = asyncio.get_running_loop()

    def writable(self) -> bool:
        session = self.session
        ws = session.ws
        if ws is not None:
            return ws.writable
        return session._poll is not None and not session._poll.done()

    def _connect_timeout(self) -> None:
        self.connect_timer = None
        if not self.sockets:
            logger.info(
                "session %s: no CONNECT within %ss", self.session.sid, self.hub.connect_timeout
            )
            self.session.close("connect timeout")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        limit = self.hub.max_pending_handlers
        if len(self.tasks) >= limit and not self.held:
            # Bounded: a client whose events outrun their handlers is read no further
            # (WebSocket: TCP pushes back); a polling client past 4x is disconnected.
            ws = self.session.ws
            if isinstance(ws, WebSocket):
                self.held = True
                ws.hold_reading(True)
            elif len(self.tasks) >= 4 * limit:
                logger.warning(
                    "session %s: %d handlers pending, closing", self.session.sid, len(self.tasks)
                )
                self.session.close("transport error", drain=False)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if self.held and len(self.tasks) <= self.hub.max_pending_handlers // 2:
            self.held = False
            ws = self.session.ws
            if isinstance(ws, WebSocket):
                ws.hold_reading(False)
        if not task.cancelled() and task.exception() is not None:
            logger.error("error in event handler", exc_info=task.exception())

    def on_message(self, data: str | bytes) -> None:
        try:
            packet = self.decoder.feed(data)
        except (SocketIOPacketError, TypeError) as exc:
            logger.info("session %s: invalid packet: %s", self.session.sid, exc)
            self.session.close("parse error", drain=False)
            return
        if packet is None:
            return
        ptype = packet.type
        if ptype is PacketType.EVENT or ptype is PacketType.BINARY_EVENT:
            socket = self.sockets.get(packet.namespace)
            if socket is not None:
                self._dispatch(socket, packet)
        elif ptype is PacketType.ACK or ptype is PacketType.BINARY_ACK:
            socket = self.sockets.get(packet.namespace)
            if socket is not None and packet.id is not None:
                fut = socket._acks.pop(packet.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(list(packet.data))
        elif ptype is PacketType.CONNECT:
            self._spawn(self._connect(packet))
        elif ptype is PacketType.DISCONNECT:
            socket = self.sockets.get(packet.namespace)
            if socket is not None:
                self._spawn(self._remove_socket(socket, "client namespace disconnect"))
        else:
            self.session.close("parse error", drain=False)

    def _dispatch(self, socket: Socket, packet: Packet) -> None:
        data = packet.data
        event, args = data[0], data[1:]
        ns = socket.namespace
        handler = ns._handlers.get(event)
        if handler is not None:
            call_args: tuple[Any, ...] = (socket, *args)
        elif ns._catch_all is not None:
            handler = ns._catch_all
            call_args = (socket, event, *args)
        else:
            return
        ack_id = packet.id
        try:
            result = handler(*call_args)
        except Exception:
            logger.exception("error in handler for %r", event)
            return
        if inspect.iscoroutine(result):
            self._spawn(result if ack_id is None else self._finish(socket, result, ack_id))
        elif inspect.isawaitable(result):
            self._spawn(self._finish(socket, result, ack_id))
        elif ack_id is not None:
            socket._send(encode_ack(ns.name, ack_id, _ack_value(result)))

    async def _finish(self, socket: Socket, result: Awaitable[Any], ack_id: int | None) -> None:
        value = await result
        if ack_id is not None and socket.connected:
            socket._send(encode_ack(socket.namespace.name, ack_id, _ack_value(value)))

    async def _connect(self, packet: Packet) -> None:
        name = packet.namespace
        session = self.session
        auth = packet.data if isinstance(packet.data, dict) else {}
        if name in self.sockets:
            return
        ns = await self.hub._namespace_for(name, auth)
        if ns is None:
            self._send_error(name, "Invalid namespace")
            return
        request = session.request
        handshake = _Handshake(
            auth=auth,
            headers={k.lower(): v for k, v in request.headers},
            query=dict(urllib.parse.parse_qsl(request.query)),
            address=session.remote_address,
            time=time.time(),
            url=request.target,
        )
        restored = ns._restore(auth) if self.hub.recovery is not None else None
        sid = restored[0].sid if restored is not None else secrets.token_urlsafe(15)
        socket = Socket(ns, self, sid, handshake)
        skip = (
            restored is not None
            and self.hub.recovery is not None
            and self.hub.recovery.skip_middlewares
        )
        if not skip:
            try:
                for middleware in ns._middlewares:
                    result = middleware(socket, auth)
                    if inspect.isawaitable(result):
                        await result
            except ConnectionRefused as exc:
                self._send_error(name, exc.message, exc.data)
                return
            except Exception as exc:
                logger.exception("error in middleware")
                self._send_error(name, str(exc) or "Internal error")
                return
        if session.state.value != "open" or name in self.sockets:
            return
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            self.connect_timer = None
        reply: dict[str, Any] = {"sid": sid}
        if self.hub.recovery is not None:
            if restored is not None:
                socket.pid = restored[0].pid
                socket.data = restored[0].data
                socket.recovered = True
            else:
                socket.pid = secrets.token_urlsafe(15)
            reply["pid"] = socket.pid
        self.sockets[name] = socket
        ns.sockets[sid] = socket
        ns._join(sid, [sid, *(restored[0].rooms if restored is not None else ())])
        socket.connected = True
        socket._send(encode(Packet(PacketType.CONNECT, name, reply)))
        if restored is not None:
            for pieces in restored[1]:
                socket._send(pieces)
        for callback in ns._on_connect:
            try:
                result = callback(socket, auth)
                if inspect.isawaitable(result):
                    await result
            except ConnectionRefused as exc:
                await socket.disconnect()
                logger.info("connection refused after connect: %s", exc.message)
                return
            except Exception:
                logger.exception("error in connect handler")

    def _send_error(self, name: str, message: str, data: Any = None) -> None:
        payload: dict[str, Any] = {"message": message}
        if data is not None:
            payload["data"] = data
        for piece in encode(Packet(PacketType.CONNECT_ERROR, name, payload)):
            self.session.send(piece)

    async def _remove_socket(self, socket: Socket, reason: str) -> None:
        if not socket.connected:
            return
        socket.connected = False
        ns = socket.namespace
        self.sockets.pop(ns.name, None)
        if reason not in (
            "client namespace disconnect",
            "server namespace disconnect",
            "server shutting down",
        ):
            ns._store(socket)
        ns._leave_all(socket.sid)
        ns.sockets.pop(socket.sid, None)
        for fut in socket._acks.values():
            if not fut.done():
                fut.set_exception(Disconnected(f"socket disconnected: {reason}"))
                fut.exception()
        for callback in ns._on_disconnect:
            try:
                result = callback(socket, reason)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("error in disconnect handler")

    def on_close(self, reason: str) -> None:
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            self.connect_timer = None
        for socket in list(self.sockets.values()):
            self._spawn(self._remove_socket(socket, reason))


class Hub:
    """The Socket.IO server.

    Args:
        path: the URL path of the engine (``/socket.io/``).
        ping_interval: seconds between Engine.IO pings.
        ping_timeout: seconds to wait for a pong.
        max_payload: the largest message or HTTP body.
        connect_timeout: seconds a client has to connect to a namespace.
        cors_origins: allowed Origins for polling (``"*"``, a list, or None).
        cors_credentials: allow credentials in CORS.
        transports: allowed transports.
        recovery: connection-state recovery options, or None (off).
        broker: the broker for multi-node fan-out (in-memory by default).
        max_attachments: the most binary attachments per packet.
        max_buffered_packets: per-session outgoing bound (slow consumers are disconnected).
        max_pending_handlers: per-client bound on event handlers still running; past it
            a WebSocket client is not read until half have finished.
        fallback: ``async def(request) -> Response`` for other HTTP paths (static files).
    """

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
        transports: Sequence[str] = ("polling", "websocket"),
        recovery: Recovery | None = None,
        broker: Broker | None = None,
        max_attachments: int = 10,
        max_buffered_packets: int = 1024,
        max_pending_handlers: int = 256,
        fallback: Callable[[Request], Awaitable[Response]] | None = None,
        node_id: str | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.recovery = recovery
        self.broker = broker or MemoryBroker()
        self.max_attachments = max_attachments
        self.max_pending_handlers = max_pending_handlers
        self.node_id = node_id or secrets.token_hex(6)
        self._offset_prefix = secrets.token_hex(4)
        self.engine = EngineServer(
            self,
            path=path,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            transports=transports,
            cors_origins=cors_origins,
            cors_credentials=cors_credentials,
            max_buffered_packets=max_buffered_packets,
            fallback=fallback,
        )
        self._namespaces: dict[str, Namespace] = {}
        self._dynamic: list[tuple[re.Pattern[str] | Callable[..., Any], Namespace]] = []
        self._subscribed = False
        self.of("/")

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
                ns._handlers.update(parent._handlers)
                ns._catch_all = parent._catch_all
                ns._on_connect = list(parent._on_connect)
                ns._on_disconnect = list(parent._on_disconnect)
                ns._middlewares = list(parent._middlewares)
                return ns
        return None

    @property
    def sockets(self) -> dict[str, Socket]:
        """Sockets of the main namespace by sid."""
        return self._namespaces["/"].sockets

    # shortcuts to the main namespace
    def on(self, event: str, namespace: str = "/") -> Callable[[Handler], Handler]:
        """Register an event handler on a namespace (see :meth:`Namespace.on`)."""
        return self.of(namespace).on(event)

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
    ) -> None:
        """Broadcast an event (to rooms, except rooms, in a namespace)."""
        rooms = {to} if isinstance(to, str) else set(to or ())
        excluded = {except_} if isinstance(except_, str) else set(except_ or ())
        op = BroadcastOperator(self.of(namespace), rooms, excluded, volatile=volatile, local=local)
        await op.emit(event, *args)

    # ------------------------------------------------------------------ broker

    async def _publish(self, kind: str, namespace: str, payload: dict[str, Any]) -> None:
        if not self._subscribed:
            return
        await self.broker.publish(
            "tether#" + namespace, Envelope(kind, namespace, self.node_id, payload)
        )

    async def _on_envelope(self, envelope: Envelope) -> None:
        if envelope.origin == self.node_id:
            return
        ns = self._namespaces.get(envelope.namespace)
        if ns is None:
            return
        p = envelope.payload
        op = BroadcastOperator(
            ns,
            set(p.get("rooms", ())),
            set(p.get("except", ())),
            volatile=bool(p.get("volatile")),
            local=True,
        )
        if envelope.kind == "broadcast":
            ns._broadcast(p["event"], p["args"], op._rooms, op._except, op._volatile)
        elif envelope.kind == "disconnect":
            await op.disconnect_sockets(bool(p.get("close")))
        elif envelope.kind == "join":
            await op.sockets_join(*p["target"])
        elif envelope.kind == "leave":
            await op.sockets_leave(*p["target"])

    async def start(self) -> None:
        """Subscribe to the broker (called by :meth:`serve`)."""
        if not self._subscribed:
            for name in self._namespaces:
                await self.broker.subscribe("tether#" + name, self._on_envelope)
            self._subscribed = True

    # ------------------------------------------------------------------ engine events

    def on_open(self, session: Session) -> None:
        session.data = _Client(self, session)

    def on_message(self, session: Session, data: str | bytes) -> None:
        client = session.data
        if client is not None:
            client.on_message(data)

    def on_close(self, session: Session, reason: str) -> None:
        client = session.data
        if client is not None:
            client.on_close(reason)

    # ------------------------------------------------------------------ serving

    def serve_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`tether.serve` that wire the hub in."""
        options = self.engine.serve_options()
        options["handler"] = self.engine.handle_websocket
        return options

    async def serve(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> Server:
        """Start serving on ``host:port``; returns the :class:`tether.Server`."""
        await self.start()
        options = self.serve_options()
        handler = options.pop("handler")
        options.update(kwargs)
        return await serve(handler, host, port, **options)

    async def close(self) -> None:
        """Disconnect every client."""
        await self.engine.close()
