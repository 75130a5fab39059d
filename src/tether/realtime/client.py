"""The asyncio Socket.IO v5 client, with automatic reconnection.

It talks to any Socket.IO v5 server (tether's own and the official Node ``socket.io``)::

    client = Client()

    @client.on("chat message")
    async def on_message(text):
        print(text)

    @client.on("*")                      # every event without a handler of its own
    def any_event(event, *args): ...

    @client.on("connect", namespace="/admin")
    def admin_connected(): ...

    await client.connect("http://127.0.0.1:3000", auth={"token": "..."},
                         namespaces=["/", "/admin"])
    await client.emit("chat message", "hi")
    reply = await client.emit_with_ack("sum", 1, 2, timeout=5)
    admin = client.socket("/admin")      # the per-namespace socket, same methods
    await admin.emit("kick", "bob")
    await client.disconnect()

Events of a namespace (``client.on(name, namespace=...)``):

* ``"connect"`` ``()``: the namespace is connected (again);
* ``"connect_error"`` ``(data)``: the server refused the namespace (middleware error: its
  message is ``data["message"]``), or the first connection failed (an exception);
* ``"disconnect"`` ``(reason)``: ``"io client disconnect"``, ``"io server disconnect"``,
  ``"transport close"``, ``"transport error"``, ``"ping timeout"``, ``"parse error"``;
* any other name: a server event; the handler's return value is the acknowledgement
  (a tuple for several arguments) when the server asked for one;
* ``"*"``: every server event without a handler of its own, called ``(event, *args)``.

Client-wide events (the ``namespace`` argument is ignored): ``"reconnect_attempt"``
``(attempt)``, ``"reconnect"`` ``(attempt)``, ``"reconnect_error"`` ``(exc)`` and
``"reconnect_failed"`` ``()``, as socket.io-client's Manager emits them. These four names are
therefore not available for server events.

Reconnection: after an unexpected loss (server restart, cut TCP connection, missed
heartbeats) the client waits ``Backoff.delay(n)`` (``min(max, initial * 2**n)`` randomized by
``± randomization_factor``) and opens a new Engine.IO session, up to
``reconnection_attempts`` times in a row. It does not reconnect after :meth:`Client.disconnect`,
after the server disconnected every namespace, or for a namespace the server refused
(``connect_error``): a refusal is an answer, not a failure.

Buffers, all bounded: while a namespace is not connected its emits wait in a buffer of at
most ``max_buffered`` packets per namespace (full: :class:`BufferFull`) and are sent in order
once it connects; volatile emits are dropped instead. With ``retries=N`` every emit is
acknowledged by the server and resent up to N times when no acknowledgement comes within
``ack_timeout`` (at-least-once delivery, one packet in flight per namespace, as in
socket.io-client). Event handlers run concurrently up to ``max_concurrent_handlers``; beyond
that the client stops reading, which pushes back on the server.

Connection-state recovery: the server's CONNECT reply carries a private id (``pid``), and
with recovery on, the server appends an offset (a string) to the arguments of each
broadcast. The client remembers the last string argument of every event as the offset (as
socket.io-client does) and sends ``pid`` and ``offset`` in the CONNECT auth when it
reconnects; the server then replays the missed events, and ``recovered`` is True. The offset
stays in the arguments given to handlers, as in socket.io-client, because the client cannot
tell a broadcast (with an offset) from a direct emit (without one); ``strip_offset=True``
removes the last string argument instead, for apps whose events all are broadcasts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import logging
import random
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..asyncio.client import Backoff
from ..engine.client import TRANSPORTS, EngineClient, EngineConnectionError
from ..exceptions import (
    AckTimeout,
    BufferFull,
    ConnectError,
    ConnectionClosed,
    Disconnected,
)
from .packets import (
    RESERVED_EVENTS,
    Decoder,
    Packet,
    PacketType,
    SocketIOPacketError,
    encode,
    encode_ack,
    encode_event,
)

__all__ = [
    "CLIENT_EVENTS",
    "AckTimeout",
    "BufferFull",
    "Client",
    "ConnectError",
    "Disconnected",
    "NamespaceSocket",
]

logger = logging.getLogger("tether.realtime.client")

#: Client-wide lifecycle events (socket.io-client's Manager events).
CLIENT_EVENTS: frozenset[str] = frozenset(
    {"reconnect_attempt", "reconnect", "reconnect_error", "reconnect_failed"}
)
_NAMESPACE_EVENTS = frozenset({"connect", "connect_error", "disconnect"})

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
Auth = dict[str, Any] | Callable[[], dict[str, Any] | Awaitable[dict[str, Any] | None] | None]


@dataclass(slots=True)
class _Queued:
    """An emit of the at-least-once queue (``retries``)."""

    event: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    tries: int = 0


@dataclass(slots=True)
class _Pending:
    """An acknowledgement being awaited."""

    callback: Callable[..., Any] | None
    future: asyncio.Future[Any] | None
    sent: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _State:
    """Connection state of one namespace."""

    sid: str | None = None
    pid: str | None = None
    offset: str | None = None
    recovered: bool = False
    connected: bool = False
    active: bool = False
    ready: asyncio.Future[None] | None = None
    buffer: collections.deque[tuple[int | None, list[str | bytes]]] = field(
        default_factory=collections.deque
    )


class NamespaceSocket:
    """The socket of one namespace (socket.io-client's ``Socket``); made by
    :meth:`Client.socket`.

    Attributes:
        namespace: the namespace name.
    """

    def __init__(self, client: Client, namespace: str) -> None:
        if not namespace.startswith("/") or "," in namespace:
            raise ValueError(f"invalid namespace {namespace!r}")
        self.client = client
        self.namespace = namespace
        self.handlers: dict[str, Handler] = {}
        self._state = _State()
        self._ack_ids = itertools.count()
        self._acks: dict[int, _Pending] = {}
        self._queue: collections.deque[_Queued] = collections.deque()
        self._queue_task: asyncio.Task[None] | None = None
        self._connected_event: asyncio.Event | None = None

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """Whether the namespace is connected now."""
        return self._state.connected

    @property
    def sid(self) -> str | None:
        """The socket id given by the server (None while disconnected)."""
        return self._state.sid if self._state.connected else None

    @property
    def recovered(self) -> bool:
        """Whether the last connection restored the previous session (missed events
        replayed) through connection-state recovery."""
        return self._state.recovered

    @property
    def buffered(self) -> int:
        """Emits waiting for the namespace to connect."""
        return len(self._state.buffer) + len(self._queue)

    # ------------------------------------------------------------------ handlers

    def on(self, event: str, handler: H | None = None) -> Any:
        """Register a handler; usable as ``@socket.on("event")``.

        Raises:
            ValueError: an empty event name.
        """
        if not event:
            raise ValueError("an event name is required")

        def register(func: H) -> H:
            if event in CLIENT_EVENTS:
                self.client._client_handlers[event] = func
            else:
                self.handlers[event] = func
            return func

        if handler is not None:
            return register(handler)
        return register

    # ------------------------------------------------------------------ emitting

    async def emit(
        self,
        event: str,
        *args: Any,
        callback: Callable[..., Any] | None = None,
        volatile: bool = False,
    ) -> None:
        """Send an event; ``callback(*args)`` gets the acknowledgement if given.

        Connected: the packet is queued on the transport (waiting while its bounded queue
        is full). Not connected: it waits in the namespace's buffer and goes out once it
        connects; a volatile emit is dropped instead. With the client's ``retries``, the
        emit goes through the at-least-once queue.

        Raises:
            BufferFull: not connected and ``max_buffered`` emits already wait.
            ValueError: a reserved event name, or arguments the codec refuses.
            TypeError: arguments JSON cannot represent.
        """
        _check_event(event)
        if self.client.retries > 0 and not volatile:
            fut = self._enqueue(event, args)
            if callback is not None:
                fut.add_done_callback(lambda f: _call_with_ack_result(callback, f))
            else:
                fut.add_done_callback(_consume)
            return
        pending = _Pending(callback, None) if callback is not None else None
        await self._send_event(event, args, pending, volatile)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Send an event and wait for its acknowledgement.

        Returns:
            None for an empty acknowledgement, the value for one argument, a tuple for
            several.

        Raises:
            AckTimeout: no acknowledgement within ``timeout`` seconds (the timer starts now,
                even if the emit waits in the buffer).
            Disconnected: the connection dropped after the event was sent.
            BufferFull: not connected and the buffer is full.
        """
        _check_event(event)
        if self.client.retries > 0:
            fut = self._enqueue(event, args)
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError:
                raise AckTimeout(f"no acknowledgement for {event!r} within {timeout}s") from None
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        pending = _Pending(None, fut)
        ack_id = await self._send_event(event, args, pending, False)
        if timeout is not None and ack_id is not None:
            pending.timer = loop.call_later(timeout, self._ack_timed_out, ack_id, event, timeout)
        return await fut

    call = emit_with_ack

    def _ack_timed_out(self, ack_id: int, event: str, timeout: float) -> None:
        pending = self._acks.pop(ack_id, None)
        if pending is None:
            return
        self._drop_buffered(ack_id)
        if pending.future is not None and not pending.future.done():
            pending.future.set_exception(
                AckTimeout(f"no acknowledgement for {event!r} within {timeout}s")
            )

    def _drop_buffered(self, ack_id: int) -> None:
        buffer = self._state.buffer
        for item in list(buffer):
            if item[0] == ack_id:
                buffer.remove(item)

    async def _send_event(
        self, event: str, args: Sequence[Any], pending: _Pending | None, volatile: bool
    ) -> int | None:
        ack_id = None
        if pending is not None:
            ack_id = next(self._ack_ids)
        parts = encode_event(self.namespace, event, args, ack_id)
        state = self._state
        engine = self.client._engine
        if state.connected and engine is not None and engine.open and not state.buffer:
            if ack_id is not None and pending is not None:
                pending.sent = True
                self._acks[ack_id] = pending
            try:
                await engine.send(*parts)
                return ack_id
            except ConnectionClosed:
                if ack_id is not None:
                    self._acks.pop(ack_id, None)
                    assert pending is not None
                    pending.sent = False
        if volatile:
            logger.debug("%s: volatile %r dropped while disconnected", self.namespace, event)
            return None
        if len(state.buffer) >= self.client.max_buffered:
            raise BufferFull(
                f"{self.namespace}: {len(state.buffer)} emits already wait for the connection"
                f" (max_buffered={self.client.max_buffered})"
            )
        if ack_id is not None and pending is not None:
            self._acks[ack_id] = pending
        state.buffer.append((ack_id, parts))
        return ack_id

    async def _flush_buffer(self) -> None:
        engine = self.client._engine
        buffer = self._state.buffer
        while buffer and self._state.connected and engine is not None and engine.open:
            ack_id, parts = buffer[0]
            try:
                await engine.send(*parts)
            except ConnectionClosed:
                return
            if buffer and buffer[0][1] is parts:
                buffer.popleft()
            if ack_id is not None and ack_id in self._acks:
                self._acks[ack_id].sent = True

    # ------------------------------------------------------------------ at-least-once queue

    def _enqueue(self, event: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        if len(self._queue) >= self.client.max_buffered:
            raise BufferFull(
                f"{self.namespace}: {len(self._queue)} emits already wait for their"
                f" acknowledgement (max_buffered={self.client.max_buffered})"
            )
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(event, args, fut))
        if self._queue_task is None or self._queue_task.done():
            self._queue_task = self.client._spawn(self._drain_queue())
        return fut

    async def _drain_queue(self) -> None:
        client = self.client
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # the caller gave up
                self._queue.popleft()
                continue
            await self._wait_connected()
            item.tries += 1
            try:
                value = await self.emit_with_ack_once(item.event, item.args, client.ack_timeout)
            except (AckTimeout, Disconnected) as exc:
                if item.tries > client.retries:
                    self._queue.popleft()
                    if not item.future.done():
                        item.future.set_exception(exc)
                else:
                    logger.debug("%s: retrying %r (%s)", self.namespace, item.event, exc)
                continue
            self._queue.popleft()
            if not item.future.done():
                item.future.set_result(value)

    async def emit_with_ack_once(
        self, event: str, args: Sequence[Any], timeout: float | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        pending = _Pending(None, fut)
        ack_id = await self._send_event(event, args, pending, False)
        if timeout is not None and ack_id is not None:
            pending.timer = loop.call_later(timeout, self._ack_timed_out, ack_id, event, timeout)
        return await fut

    async def _wait_connected(self) -> None:
        while not self._state.connected:
            if self._connected_event is None:
                self._connected_event = asyncio.Event()
            self._connected_event.clear()
            await self._connected_event.wait()

    # ------------------------------------------------------------------ connection

    async def disconnect(self) -> None:
        """Leave this namespace (no reconnection for it); the last one closes the client."""
        state = self._state
        state.active = False
        engine = self.client._engine
        if state.connected and engine is not None and engine.open:
            with contextlib.suppress(ConnectionClosed):
                await engine.send(*encode(Packet(PacketType.DISCONNECT, self.namespace)))
        self._set_disconnected("io client disconnect")
        if not any(s._state.active for s in self.client._sockets.values()):
            await self.client.disconnect()

    async def _send_connect(self, engine: EngineClient) -> None:
        state = self._state
        auth = await self.client._resolve_auth()
        data: dict[str, Any] | None = dict(auth) if auth is not None else None
        if state.pid is not None:
            # Connection-state recovery: the server restores the session from these.
            recovery: dict[str, Any] = {"pid": state.pid}
            if state.offset is not None:
                recovery["offset"] = state.offset
            data = {**recovery, **(data or {})}
        with contextlib.suppress(ConnectionClosed):
            await engine.send(*encode(Packet(PacketType.CONNECT, self.namespace, data)))

    def _on_connect(self, data: Any) -> None:
        state = self._state
        sid = data.get("sid") if isinstance(data, dict) else None
        pid = data.get("pid") if isinstance(data, dict) else None
        state.sid = sid if isinstance(sid, str) else None
        pid = pid if isinstance(pid, str) else None
        state.recovered = pid is not None and pid == state.pid
        state.pid = pid
        state.connected = True
        logger.info(
            "%s connected (sid %s%s)",
            self.namespace,
            state.sid,
            ", session recovered" if state.recovered else "",
        )
        if state.ready is not None and not state.ready.done():
            state.ready.set_result(None)
        # Flushing may wait for room in the transport's queue: not on the reading path.
        self.client._spawn(self._after_connect())

    async def _after_connect(self) -> None:
        await self._flush_buffer()
        if self._connected_event is not None:
            self._connected_event.set()
        if self._state.connected:
            self.client._fire(self, "connect")

    def _on_connect_error(self, data: Any) -> None:
        state = self._state
        # A refusal is an answer: no automatic retry for this namespace.
        state.active = False
        message = data.get("message") if isinstance(data, dict) else data
        logger.info("%s refused by the server: %s", self.namespace, message)
        if state.ready is not None and not state.ready.done():
            state.ready.set_exception(
                ConnectError(f"{self.namespace}: {message}", self.namespace, data)
            )
        self._fail_acks(ConnectError(f"{self.namespace}: {message}", self.namespace, data))
        self.client._fire(self, "connect_error", data)
        self.client._close_if_idle()

    def _set_disconnected(self, reason: str) -> None:
        state = self._state
        was_connected = state.connected
        state.connected = False
        state.recovered = state.recovered and was_connected
        self._fail_acks(Disconnected(f"{self.namespace} disconnected: {reason}"), sent_only=True)
        if was_connected:
            logger.info("%s disconnected: %s", self.namespace, reason)
            self.client._fire(self, "disconnect", reason)

    def _fail_acks(self, exc: BaseException, *, sent_only: bool = False) -> None:
        # Acks of packets still in the buffer survive a disconnection (they go out later);
        # those of packets already sent are lost with the connection.
        for ack_id, pending in list(self._acks.items()):
            if sent_only and not pending.sent:
                continue
            del self._acks[ack_id]
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(exc)

    def _on_ack(self, packet: Packet) -> None:
        assert packet.id is not None
        pending = self._acks.pop(packet.id, None)
        if pending is None:
            logger.debug("%s: ack %d for nothing (late or duplicate)", self.namespace, packet.id)
            return
        if pending.timer is not None:
            pending.timer.cancel()
        args = list(packet.data or ())
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(_ack_value(args))
        if pending.callback is not None:
            self.client._call_handler(pending.callback, args)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<NamespaceSocket {self.namespace} {state}>"


class Client:
    """A Socket.IO v5 client (asyncio) with automatic reconnection.

    Args:
        reconnection: reconnect after an unexpected loss.
        reconnection_attempts: failed attempts in a row before giving up (None: forever).
        reconnection_delay: the first delay, in seconds.
        reconnection_delay_max: the largest delay.
        randomization_factor: jitter, 0 to 1 (each delay is randomized by ± that fraction).
        rng: the random source of the jitter (seed it in tests).
        retries: resend an unacknowledged emit this many times (0: off).
        ack_timeout: seconds to wait for an acknowledgement in the retry queue.
        max_buffered: emits buffered per namespace while it is not connected.
        max_concurrent_handlers: handler coroutines running at once.
        strip_offset: remove the recovery offset from event arguments (see the module doc).
        open_timeout: seconds for the Engine.IO handshake.
        max_message_size: the largest message accepted from the server.
    """

    def __init__(
        self,
        *,
        reconnection: bool = True,
        reconnection_attempts: int | None = None,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        rng: random.Random | None = None,
        retries: int = 0,
        ack_timeout: float | None = None,
        max_buffered: int = 1024,
        max_concurrent_handlers: int = 64,
        strip_offset: bool = False,
        open_timeout: float = 10.0,
        max_message_size: int = 16 * 2**20,
    ) -> None:
        if reconnection_attempts is not None and reconnection_attempts < 0:
            raise ValueError("reconnection_attempts must be >= 0 or None")
        if not 0 <= randomization_factor <= 1:
            raise ValueError("randomization_factor must be between 0 and 1")
        if max_buffered < 0 or max_concurrent_handlers < 1 or retries < 0:
            raise ValueError("max_buffered, retries >= 0 and max_concurrent_handlers >= 1")
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        #: The reconnection schedule: ``backoff.delay(n)`` before attempt ``n + 1``.
        self.backoff = Backoff(
            delay_initial=reconnection_delay,
            delay_max=reconnection_delay_max,
            factor=2.0,
            randomization_factor=randomization_factor,
            rng=rng,
        )
        self.retries = retries
        self.ack_timeout = ack_timeout
        self.max_buffered = max_buffered
        self.max_concurrent_handlers = max_concurrent_handlers
        self.strip_offset = strip_offset
        self.open_timeout = open_timeout
        self.max_message_size = max_message_size

        self._sockets: dict[str, NamespaceSocket] = {}
        self._client_handlers: dict[str, Handler] = {}
        self._engine: EngineClient | None = None
        self._decoder = Decoder()
        self._auth: Auth | None = None
        self._url: str | None = None
        self._engine_options: dict[str, Any] = {}
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._deliberate = False
        # The reconnection sleep; a test may swap it to record the schedule.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # ------------------------------------------------------------------ registration

    def socket(self, namespace: str = "/") -> NamespaceSocket:
        """The socket of ``namespace`` (created on first use).

        Raises:
            ValueError: an invalid namespace name.
        """
        sock = self._sockets.get(namespace)
        if sock is None:
            sock = self._sockets[namespace] = NamespaceSocket(self, namespace)
        return sock

    def on(self, event: str, handler: H | None = None, *, namespace: str = "/") -> Any:
        """Register a handler, as a decorator (``@client.on("event")``) or a call.

        ``event`` may be a server event, ``"*"`` (catch-all), a namespace event
        (``connect``, ``connect_error``, ``disconnect``) or a client event
        (:data:`CLIENT_EVENTS`).
        """
        return self.socket(namespace).on(event, handler)

    def event(self, handler: H) -> H:
        """Register a handler named after the function: ``@client.event``."""
        self.on(handler.__name__, handler)
        return handler

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """Whether the Engine.IO session is open and at least one namespace is connected."""
        engine = self._engine
        return (
            engine is not None and engine.open and any(s.connected for s in self._sockets.values())
        )

    @property
    def transport(self) -> str | None:
        """The transport in use (``"polling"`` or ``"websocket"``), or None."""
        engine = self._engine
        return engine.transport if engine is not None and engine.open else None

    @property
    def sid(self) -> str | None:
        """The socket id in the main namespace ``/``."""
        sock = self._sockets.get("/")
        return sock.sid if sock is not None else None

    @property
    def recovered(self) -> bool:
        """True when every connected namespace recovered its session on its last connection
        (see :attr:`NamespaceSocket.recovered` for one namespace)."""
        connected = [s for s in self._sockets.values() if s.connected]
        return bool(connected) and all(s.recovered for s in connected)

    # ------------------------------------------------------------------ connecting

    async def connect(
        self,
        url: str,
        *,
        namespaces: Iterable[str] | None = None,
        auth: Auth | None = None,
        transports: Sequence[str] | None = None,
        path: str = "/socket.io/",
        headers: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        wait: bool = True,
        wait_timeout: float = 10.0,
        retry: bool = False,
    ) -> None:
        """Connect to a Socket.IO server and join ``namespaces``.

        Args:
            url: ``http(s)://host:port`` (``ws(s)://`` works too); its query parameters go
                with every request.
            namespaces: the namespaces to join; by default those with handlers, else ``/``.
            auth: the CONNECT payload: a dict, or a function (sync or async) returning one,
                called again before every connection attempt (token refresh).
            transports: ``["polling", "websocket"]`` by default (open on polling, then
                upgrade); ``["websocket"]`` or ``["polling"]`` to use only one.
            path: the server's endpoint.
            headers: extra HTTP headers (for polling requests and the WebSocket handshake).
            ssl: TLS context for https/wss.
            wait: wait until every namespace is connected or refused.
            wait_timeout: the bound on that wait.
            retry: when the first attempt fails, keep trying with the reconnection policy
                instead of raising.

        Raises:
            ConnectError: the server was unreachable (without ``retry``), refused a
                namespace (``data`` holds its message), or did not answer in time;
                the client is then disconnected.
            InvalidState: already connected or connecting.
        """
        from ..exceptions import InvalidState

        if self._run_task is not None and not self._run_task.done():
            raise InvalidState("the client is already connected or connecting")
        names = (
            list(namespaces)
            if namespaces is not None
            else [name for name, s in self._sockets.items() if s.handlers] or ["/"]
        )
        self._url = url
        self._auth = auth
        self._engine_options = {
            "path": path,
            "transports": list(transports) if transports is not None else list(TRANSPORTS),
            "headers": headers,
            "ssl": ssl,
        }
        self._deliberate = False
        self._slots = asyncio.Semaphore(self.max_concurrent_handlers)
        loop = asyncio.get_running_loop()
        for sock in self._sockets.values():
            sock._state.active = False
        for name in names:
            state = self.socket(name)._state
            state.active = True
            state.ready = loop.create_future()
        first: asyncio.Future[None] = loop.create_future()
        self._run_task = asyncio.create_task(self._run(first, retry))
        if not wait:
            first.add_done_callback(_consume)
            return
        try:
            async with asyncio.timeout(wait_timeout):
                await first
                for name in names:
                    ready = self._sockets[name]._state.ready
                    assert ready is not None
                    await asyncio.shield(ready)
        except TimeoutError:
            await self.disconnect()
            raise ConnectError(f"not connected within {wait_timeout}s") from None
        except ConnectError:
            await self.disconnect()
            raise

    async def _resolve_auth(self) -> dict[str, Any] | None:
        auth = self._auth
        if auth is None or isinstance(auth, dict):
            return auth
        result = auth()
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, dict):
            raise TypeError("the auth function must return a dict or None")
        return result

    def _new_engine(self) -> EngineClient:
        assert self._url is not None
        return EngineClient(
            self._url,
            on_message=self._on_message,
            open_timeout=self.open_timeout,
            max_message_size=self.max_message_size,
            **self._engine_options,
        )

    async def _run(self, first: asyncio.Future[None], retry: bool) -> None:
        """Open sessions until deliberately closed or out of attempts."""
        attempt = 0
        reconnecting = False
        try:
            while True:
                if reconnecting:
                    limit = self.reconnection_attempts
                    if limit is not None and attempt >= limit:
                        logger.warning("giving up after %d reconnection attempts", attempt)
                        self._fire(None, "reconnect_failed")
                        return
                    delay = self.backoff.delay(attempt)
                    logger.info("reconnecting in %.3fs (attempt %d)", delay, attempt + 1)
                    await self._sleep(delay)
                    attempt += 1
                    if self._deliberate:
                        return
                    self._fire(None, "reconnect_attempt", attempt)
                engine = self._new_engine()
                self._decoder = Decoder()
                try:
                    await engine.connect()
                except EngineConnectionError as exc:
                    logger.info("connection failed: %s", exc)
                    if not reconnecting:
                        if not (retry and self.reconnection):
                            error = ConnectError(f"cannot connect: {exc}")
                            error.__cause__ = exc
                            for sock in self._active():
                                self._fire(sock, "connect_error", error)
                            if not first.done():
                                first.set_exception(error)
                            return
                        reconnecting = True
                        attempt = 0
                    else:
                        self._fire(None, "reconnect_error", exc)
                    continue
                self._engine = engine
                if reconnecting:
                    logger.info("reconnected after %d attempt(s)", attempt)
                    self._fire(None, "reconnect", attempt)
                reconnecting = False
                attempt = 0
                if not first.done():
                    first.set_result(None)
                for sock in self._active():
                    await sock._send_connect(engine)
                reason = await engine.wait_closed()
                for sock in self._sockets.values():
                    sock._set_disconnected(reason)
                if self._deliberate or not self.reconnection or not self._active():
                    return
                reconnecting = True
        except Exception as exc:  # a bug, or a failing auth function
            logger.exception("the connection loop failed")
            if not first.done():
                first.set_exception(ConnectError(f"connection failed: {exc}"))
            for sock in self._sockets.values():
                sock._set_disconnected("transport error")
        finally:
            self._engine = None
            for sock in self._sockets.values():
                ready = sock._state.ready
                if ready is not None and not ready.done():
                    ready.set_exception(ConnectError(f"{sock.namespace}: not connected"))
                    ready.exception()

    def _active(self) -> list[NamespaceSocket]:
        return [s for s in self._sockets.values() if s._state.active]

    # ------------------------------------------------------------------ receiving

    async def _on_message(self, data: str | bytes) -> None:
        try:
            packet = self._decoder.feed(data)
        except SocketIOPacketError as exc:
            logger.warning("malformed packet from the server: %s", exc)
            if self._engine is not None:
                self._engine.abort("parse error")
            return
        if packet is None:
            return
        sock = self._sockets.get(packet.namespace)
        if sock is None:
            logger.debug("packet for unknown namespace %s ignored", packet.namespace)
            return
        ptype = packet.type
        if ptype is PacketType.EVENT or ptype is PacketType.BINARY_EVENT:
            await self._on_event(sock, packet)
        elif ptype is PacketType.ACK or ptype is PacketType.BINARY_ACK:
            sock._on_ack(packet)
        elif ptype is PacketType.CONNECT:
            sock._on_connect(packet.data)
        elif ptype is PacketType.CONNECT_ERROR:
            sock._on_connect_error(packet.data)
        elif ptype is PacketType.DISCONNECT:
            sock._state.active = False
            sock._set_disconnected("io server disconnect")
            self._close_if_idle()

    def _close_if_idle(self) -> None:
        """Close the session when no namespace wants it any more (no reconnection)."""
        if not self._active() and self._engine is not None:
            self._deliberate = True
            self._spawn(self._engine.close())

    async def _on_event(self, sock: NamespaceSocket, packet: Packet) -> None:
        args: list[Any] = list(packet.data)
        event = args.pop(0)
        state = sock._state
        if state.pid is not None and args and isinstance(args[-1], str):
            state.offset = args[-1]
            if self.strip_offset:
                args.pop()
        handler = sock.handlers.get(str(event)) if event not in _NAMESPACE_EVENTS else None
        if handler is None:
            handler = sock.handlers.get("*")
            if handler is None:
                logger.debug("%s: no handler for %r", sock.namespace, event)
                return
            args = [event, *args]
        ack_id = packet.id
        if inspect.iscoroutinefunction(handler):
            assert self._slots is not None
            await self._slots.acquire()
            task = self._spawn(self._run_handler(sock, handler, args, ack_id))
            task.add_done_callback(lambda _: self._slots.release() if self._slots else None)
            return
        try:
            result = handler(*args)
        except Exception:
            logger.exception("error in the handler of %r", event)
            return
        if inspect.isawaitable(result):
            result = await result
        if ack_id is not None:
            await self._send_ack(sock, ack_id, result)

    async def _run_handler(
        self, sock: NamespaceSocket, handler: Handler, args: list[Any], ack_id: int | None
    ) -> None:
        try:
            result = await handler(*args)
        except Exception:
            logger.exception("error in the handler of %r", args[0] if args else None)
            return
        if ack_id is not None:
            await self._send_ack(sock, ack_id, result)

    async def _send_ack(self, sock: NamespaceSocket, ack_id: int, result: Any) -> None:
        if result is None:
            values: list[Any] = []
        elif isinstance(result, tuple):
            values = list(result)
        else:
            values = [result]
        engine = self._engine
        if engine is None or not engine.open:
            return  # the ack belongs to a session that is gone
        with contextlib.suppress(ConnectionClosed):
            await engine.send(*encode_ack(sock.namespace, ack_id, values))

    # ------------------------------------------------------------------ callbacks

    def _fire(self, sock: NamespaceSocket | None, event: str, *args: Any) -> None:
        handler = self._client_handlers.get(event) if sock is None else sock.handlers.get(event)
        if handler is not None:
            self._call_handler(handler, list(args))

    def _call_handler(self, handler: Handler, args: list[Any]) -> None:
        try:
            result = handler(*args)
        except Exception:
            logger.exception("error in handler %r", handler)
            return
        if inspect.isawaitable(result):
            self._spawn(_log_errors(result, handler))

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ closing

    async def disconnect(self) -> None:
        """Leave every namespace and close the connection; no reconnection follows.

        Buffered emits stay buffered (they go out on the next :meth:`connect`).
        """
        self._deliberate = True
        engine = self._engine
        connected = [s for s in self._sockets.values() if s._state.connected]
        for sock in self._sockets.values():
            sock._state.active = False
        if engine is not None and engine.open:
            for sock in connected:
                with contextlib.suppress(ConnectionClosed):
                    await engine.send(*encode(Packet(PacketType.DISCONNECT, sock.namespace)))
            for sock in connected:
                sock._set_disconnected("io client disconnect")
            await engine.close()
        task = self._run_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            if self._engine is None:
                task.cancel()  # sleeping between attempts, or connecting
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5.0)
        for sock in self._sockets.values():
            sock._set_disconnected("io client disconnect")

    async def wait(self) -> None:
        """Wait until the client stops for good: :meth:`disconnect`, the server
        disconnected every namespace, or reconnection gave up."""
        task = self._run_task
        if task is not None:
            await asyncio.wait({task})

    async def emit(
        self,
        event: str,
        *args: Any,
        namespace: str = "/",
        callback: Callable[..., Any] | None = None,
        volatile: bool = False,
    ) -> None:
        """:meth:`NamespaceSocket.emit` on ``namespace``."""
        await self.socket(namespace).emit(event, *args, callback=callback, volatile=volatile)

    async def emit_with_ack(
        self, event: str, *args: Any, namespace: str = "/", timeout: float | None = None
    ) -> Any:
        """:meth:`NamespaceSocket.emit_with_ack` on ``namespace``."""
        return await self.socket(namespace).emit_with_ack(event, *args, timeout=timeout)

    call = emit_with_ack

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    def __repr__(self) -> str:
        return f"<Client {'connected' if self.connected else 'disconnected'}>"


# Ack callbacks of the retry queue run after their caller returned: keep them referenced.
_background: set[asyncio.Future[Any]] = set()


def _check_event(event: str) -> None:
    if not isinstance(event, str) or not event:
        raise ValueError("the event name must be a non-empty str")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


def _ack_value(args: list[Any]) -> Any:
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _call_with_ack_result(callback: Callable[..., Any], fut: asyncio.Future[Any]) -> None:
    if fut.cancelled() or fut.exception() is not None:
        logger.info("emit abandoned: %s", None if fut.cancelled() else fut.exception())
        return
    value = fut.result()
    args = [] if value is None else list(value) if isinstance(value, tuple) else [value]
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_log_errors(result, callback))
            _background.add(task)
            task.add_done_callback(_background.discard)
    except Exception:
        logger.exception("error in ack callback %r", callback)


async def _log_errors(awaitable: Awaitable[Any], handler: Handler) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("error in handler %r", handler)
