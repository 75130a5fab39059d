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

Where things live: this module has :class:`Client` (the Engine.IO session, the
reconnection loop, dispatching what arrives); :mod:`.client_socket` the per-namespace
:class:`NamespaceSocket` (emitting, buffering, connect and disconnect);
:mod:`.client_acks` the acknowledgements awaited; :mod:`.client_retry` the at-least-once
queue of ``retries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..asyncio.client import Backoff
from ..engine.client import TRANSPORTS, EngineClient, EngineConnectionError
from ..exceptions import (
    AckTimeout,
    BufferFull,
    ConnectError,
    ConnectionClosed,
    Disconnected,
)
from .client_acks import ack_args
from .client_socket import CLIENT_EVENTS, H, Handler, NamespaceSocket, _consume
from .packets import (
    Decoder,
    Packet,
    PacketType,
    SocketIOPacketError,
    encode,
    encode_ack,
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

_NAMESPACE_EVENTS = frozenset({"connect", "connect_error", "disconnect"})

Auth = dict[str, Any] | Callable[[], dict[str, Any] | Awaitable[dict[str, Any] | None] | None]


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
        max_pending_acks: acknowledgements one namespace may await at once (an emit with
            a callback or ``emit_with_ack`` beyond raises :class:`BufferFull`): a server
            that never answers cannot make them pile up. Each ends with its ack, its
            timeout, or :class:`Disconnected` when the connection goes.
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
        max_pending_acks: int = 10_000,
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
        self.max_pending_acks = max_pending_acks
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
    def pings_received(self) -> int:
        """Heartbeats (server pings) answered on the current Engine.IO session."""
        engine = self._engine
        return engine.pings_received if engine is not None else 0

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
        engine = self._engine
        if engine is None or not engine.open:
            return  # the ack belongs to a session that is gone
        with contextlib.suppress(ConnectionClosed):
            await engine.send(*encode_ack(sock.namespace, ack_id, ack_args(result)))

    # ------------------------------------------------------------------ callbacks

    def _fire(self, sock: NamespaceSocket | None, event: str, *args: Any) -> None:
        handler = self._client_handlers.get(event) if sock is None else sock.handlers.get(event)
        if handler is not None:
            self._call_handler(handler, list(args))

    def _call_handler(self, handler: Handler, args: list[Any], what: str = "handler") -> None:
        try:
            result = handler(*args)
        except Exception:
            logger.exception("error in %s %r", what, handler)
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


async def _log_errors(awaitable: Awaitable[Any], handler: Handler) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("error in handler %r", handler)
