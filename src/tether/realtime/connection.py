"""One Engine.IO session seen from Socket.IO: packet dispatch, connecting to namespaces
(middlewares, recovery) and the bound on event handlers still running."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ..engine.session import _SESSION_OPEN, Session
from ..exceptions import ConnectionRefused
from .packets import (
    _SIO_ACK,
    _SIO_BINARY_ACK,
    _SIO_BINARY_EVENT,
    _SIO_CONNECT,
    _SIO_CONNECT_ERROR,
    _SIO_DISCONNECT,
    _SIO_EVENT,
    Decoder,
    Packet,
    SocketIOPacketError,
    encode,
    encode_ack,
)
from .socket import Handshake, Socket

if TYPE_CHECKING:
    from .hub import Hub
    from .namespace import Namespace

__all__ = ["Connection"]

logger = logging.getLogger("tether.realtime")

# Reasons after which a socket's state is not kept for recovery: it left on purpose.
_DELIBERATE = frozenset(
    ("client namespace disconnect", "server namespace disconnect", "server shutting down")
)


class _Rest:
    """The rest of a coroutine that was started by hand and suspended on ``first``: the
    task that awaits this waits on what the coroutine waits on, then drives it on."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._first
        self._first = None
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # cancellation, thrown in by the task
                try:
                    yielded = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration as done:
                    return done.value


async def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Rest(coro, first)


def _ack_value(result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def _address(session: Session) -> str:
    address = session.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return "?"


async def _call_all(callbacks: list[Any], *args: Any) -> None:
    """Call each callback (sync or async) in order; ConnectionRefused propagates."""
    for callback in callbacks:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result


class Connection:
    """One Engine.IO session and the namespace sockets it carries."""

    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.session = session
        self.decoder = Decoder(max_attachments=hub.max_attachments)
        self.sockets: dict[str, Socket] = {}
        self.loop = asyncio.get_running_loop()
        self.connect_timer: asyncio.TimerHandle | None = self.loop.call_later(
            hub.connect_timeout, self._connect_timeout
        )
        self.tasks: set[asyncio.Task[Any]] = set()
        self.held = False
        # CONNECTs whose middlewares are running, by namespace, and refusals so far:
        # a client cannot hammer the middlewares (wrong tokens) on one session.
        self._connecting: set[str] = set()
        self._refusals = 0

    def _connect_timeout(self) -> None:
        self.connect_timer = None
        if not self.sockets:
            logger.info(
                "session %s: no CONNECT within %ss", self.session.sid, self.hub.connect_timeout
            )
            self.session.close("connect timeout")

    def _cancel_connect_timer(self) -> None:
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            self.connect_timer = None

    # ------------------------------------------------------------------ handler bound

    def _spawn(
        self, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None = None
    ) -> None:
        task = self.loop.create_task(coro, context=context)
        self.tasks.add(task)
        hub_tasks = self.hub._tasks
        hub_tasks.add(task)
        task.add_done_callback(hub_tasks.discard)
        task.add_done_callback(self._task_done)
        limit = self.hub.max_pending_handlers
        if len(self.tasks) >= limit and not self.held:
            # Bounded: a client whose events outrun their handlers is read no further
            # (WebSocket: TCP pushes back); a polling client, whose requests are already
            # read, is disconnected past 4x.
            if self.session.hold_reading(True):
                self.held = True
            elif len(self.tasks) >= 4 * limit:
                logger.warning(
                    "session %s: %d handlers pending, closing", self.session.sid, len(self.tasks)
                )
                self.session.close("transport error", drain=False)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if self.held and len(self.tasks) <= self.hub.max_pending_handlers // 2:
            self.held = False
            self.session.hold_reading(False)
        if not task.cancelled() and task.exception() is not None:
            logger.error("error in event handler", exc_info=task.exception())

    # ------------------------------------------------------------------ packets

    def on_message(self, data: str | bytes) -> None:
        """Handle one Engine.IO message (a Socket.IO packet or one of its attachments)."""
        try:
            packet = self.decoder.feed(data)
        except (SocketIOPacketError, TypeError) as exc:
            logger.info("session %s: invalid packet: %s", self.session.sid, exc)
            self.session.close("parse error", drain=False)
            return
        if packet is None:
            return
        ptype = packet.type
        socket = self.sockets.get(packet.namespace)
        if ptype is _SIO_EVENT or ptype is _SIO_BINARY_EVENT:
            if socket is not None:
                self._dispatch(socket, packet)
        elif ptype is _SIO_ACK or ptype is _SIO_BINARY_ACK:
            if socket is not None and packet.id is not None:
                socket._on_ack(packet.id, list(packet.data))
        elif ptype is _SIO_CONNECT:
            name = packet.namespace
            if name in self._connecting or name in self.sockets:
                return  # one CONNECT per namespace at a time; the official clients wait
            # Connected and connecting together: this also bounds the middlewares that
            # one connection can have running at once.
            if len(self.sockets) + len(self._connecting) >= self.hub.max_namespaces_per_connection:
                self.hub.metrics.inc("tether_connects_refused_total", reason="namespaces")
                self._send_error(name, "Too many namespaces on this connection")
                return
            self._connecting.add(name)
            self._spawn(self._connect(packet))
        elif ptype is _SIO_DISCONNECT:
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
            # Eager start: run the handler here up to its first suspension (as a task
            # would, in a copy of the context); one that never suspends is done without
            # a task, and its acknowledgement goes out at once.
            context = contextvars.copy_context()
            try:
                first = context.run(result.send, None)
            except StopIteration as done:
                if ack_id is not None:
                    socket._send(encode_ack(ns.name, ack_id, _ack_value(done.value)))
                return
            except Exception:
                logger.exception("error in event handler")
                return
            rest = _resume(result, first)
            self._spawn(rest if ack_id is None else self._finish(socket, rest, ack_id), context)
        elif inspect.isawaitable(result):
            self._spawn(self._finish(socket, result, ack_id))
        elif ack_id is not None:
            socket._send(encode_ack(ns.name, ack_id, _ack_value(result)))

    async def _finish(self, socket: Socket, result: Awaitable[Any], ack_id: int | None) -> None:
        value = await result
        if ack_id is not None and socket.connected:
            socket._send(encode_ack(socket.namespace.name, ack_id, _ack_value(value)))

    # ------------------------------------------------------------------ connecting

    def _handshake(self, auth: dict[str, Any]) -> Handshake:
        request = self.session.request
        return Handshake(
            auth=auth,
            headers={k.lower(): v for k, v in request.headers},
            query=dict(urllib.parse.parse_qsl(request.query)),
            address=self.session.remote_address,
            time=time.time(),
            url=request.target,
        )

    async def _connect(self, packet: Packet) -> None:
        try:
            await self._open_socket(packet)
        finally:
            self._connecting.discard(packet.namespace)

    def _refused(self, socket: Socket, name: str, message: str, data: Any = None) -> None:
        """Refuse a CONNECT: forget what the middlewares registered (rooms), tell the
        client, and close the session once it has been refused too often."""
        socket._gone = True
        socket.namespace.adapter.leave_all(socket.sid)
        self._send_error(name, message, data)
        logger.info(
            "connect %s refused: %s (session=%s from=%s)",
            name,
            message,
            self.session.sid,
            _address(self.session),
        )
        self.hub.metrics.inc("tether_connects_refused_total", reason="middleware")
        self._refusals += 1
        if self._refusals >= self.hub.max_connect_refusals:
            logger.info(
                "session %s: %d connections refused, closing", self.session.sid, self._refusals
            )
            self.hub.metrics.inc("tether_sessions_closed_total", reason="refusals")
            self.session.close("too many refused connections")

    async def _open_socket(self, packet: Packet) -> None:
        name = packet.namespace
        auth = packet.data if isinstance(packet.data, dict) else {}
        if name in self.sockets:
            return
        ns = await self.hub._namespace_for(name, auth)
        if ns is None:
            self._send_error(name, "Invalid namespace")
            return
        log = ns.recovery_log
        shared = self.hub._shared
        restored = log.restore(auth) if log is not None else None
        record = await shared.restore(ns, auth) if shared is not None and auth else None
        if record is not None:
            sid = record[0].sid
        elif restored is not None:
            sid = restored[0].sid
        else:
            sid = secrets.token_urlsafe(15)
        socket = Socket(ns, self, sid, self._handshake(auth))
        options = self.hub.recovery
        if (restored is None and record is None) or (
            options is not None and not options.skip_middlewares
        ):
            try:
                await _call_all(ns._middlewares, socket, auth)
            except ConnectionRefused as exc:
                self._refused(socket, name, exc.message, exc.data)
                return
            except Exception as exc:
                logger.exception("error in middleware")
                self._refused(socket, name, str(exc) or "Internal error")
                return
        replay: list[list[str | bytes]] | None = None
        if record is not None and shared is not None:
            # Rooms joined and the missed broadcasts gathered before CONNECT goes out.
            replay = await shared.replay(ns, socket, *record)
            if replay is None:
                record = None
                sid = socket.sid = secrets.token_urlsafe(15)
        if self.session.state is not _SESSION_OPEN or name in self.sockets:
            socket._gone = True
            ns.adapter.leave_all(sid)
            return
        self._cancel_connect_timer()
        reply: dict[str, Any] = {"sid": sid}
        if record is not None:
            socket.pid = record[0].pid
            socket.data = record[0].data if isinstance(record[0].data, dict) else {}
            socket._position = record[0].position
            socket.recovered = True
            reply["pid"] = socket.pid
        elif shared is not None:
            socket.pid = secrets.token_urlsafe(15)
            reply["pid"] = socket.pid
        elif log is not None:
            if restored is not None:
                socket.pid = restored[0].pid
                socket.data = restored[0].data
                socket.recovered = True
            else:
                socket.pid = secrets.token_urlsafe(15)
            reply["pid"] = socket.pid
        self.sockets[name] = socket
        ns.sockets[sid] = socket
        # The sid room's SUBSCRIBE is in flight for one round trip (never delaying
        # CONNECT or the connect handlers); ``await socket.join(socket.sid)`` waits for it.
        if record is None:
            ns.adapter.join(sid, [sid, *(restored[0].rooms if restored is not None else ())])
        socket.connected = True
        socket._send(encode(Packet(_SIO_CONNECT, name, reply)))
        if logger.isEnabledFor(logging.INFO):
            session = self.session
            logger.info(
                "connect %s sid=%s session=%s transport=%s from=%s%s",
                name,
                sid,
                session.sid,
                session.transport,
                _address(session),
                " (recovered)" if socket.recovered else "",
            )
        if restored is not None:
            for pieces in restored[1]:
                socket._send(pieces)
        if replay is not None:
            for pieces in replay:
                socket._send(pieces)
        if shared is not None:
            shared.touch(socket)
        await self._connected(ns, socket, auth)

    async def _connected(self, ns: Namespace, socket: Socket, auth: dict[str, Any]) -> None:
        for callback in ns._on_connect:
            try:
                await _call_all([callback], socket, auth)
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
        for piece in encode(Packet(_SIO_CONNECT_ERROR, name, payload)):
            self.session.send(piece)

    # ------------------------------------------------------------------ disconnecting

    async def _remove_socket(self, socket: Socket, reason: str) -> None:
        if not socket.connected:
            return
        socket.connected = False
        socket._gone = True
        ns = socket.namespace
        self.sockets.pop(ns.name, None)
        if reason not in _DELIBERATE:
            ns._store(socket)
        elif self.hub._shared is not None:
            self.hub._shared.forget(socket)
        ns.adapter.leave_all(socket.sid)
        ns.sockets.pop(socket.sid, None)
        socket._fail_acks(reason)
        if logger.isEnabledFor(logging.INFO):
            session = self.session
            logger.info(
                "disconnect %s sid=%s session=%s transport=%s from=%s reason=%s",
                ns.name,
                socket.sid,
                session.sid,
                session.transport,
                _address(session),
                reason,
            )
        for callback in ns._on_disconnect:
            try:
                await _call_all([callback], socket, reason)
            except Exception:
                logger.exception("error in disconnect handler")
        ns.hub._release(ns)

    def on_close(self, reason: str) -> None:
        """The Engine.IO session closed: every socket disconnects with ``reason``."""
        self._cancel_connect_timer()
        for socket in list(self.sockets.values()):
            self._spawn(self._remove_socket(socket, reason))
