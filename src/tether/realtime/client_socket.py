"""The socket of one namespace of the Socket.IO client (socket.io-client's ``Socket``).

A :class:`NamespaceSocket` holds what belongs to one namespace: its handlers, its
connection state (sid, recovery pid and offset), its bounded buffer of emits waiting for
the connection, its acknowledgements (:mod:`.client_acks`) and its at-least-once queue
(:mod:`.client_retry`). The :class:`~tether.realtime.client.Client` owns the Engine.IO
session they all share, and the reconnection loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import AckTimeout, BufferFull, ConnectError, ConnectionClosed, Disconnected
from .client_acks import AckTable, PendingAck, ack_args
from .client_retry import RetryQueue
from .packets import RESERVED_EVENTS, Packet, PacketType, encode, encode_event

if TYPE_CHECKING:
    from ..engine.client import EngineClient
    from .client import Client

__all__ = ["CLIENT_EVENTS", "NamespaceSocket"]

# The client's logger: the split into modules is no concern of the application's logging.
logger = logging.getLogger("tether.realtime.client")

#: Client-wide lifecycle events (socket.io-client's Manager events).
CLIENT_EVENTS: frozenset[str] = frozenset(
    {"reconnect_attempt", "reconnect", "reconnect_error", "reconnect_failed"}
)

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


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
        self._acks = AckTable()
        self._retry = RetryQueue(self)
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
        return len(self._state.buffer) + len(self._retry)

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
            fut = self._retry.put(event, args)
            if callback is not None:
                fut.add_done_callback(lambda f: self._call_with_ack_result(callback, f))
            else:
                fut.add_done_callback(_consume)
            return
        pending = PendingAck(callback, None) if callback is not None else None
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
            BufferFull: not connected and the buffer is full, or ``max_pending_acks``
                acknowledgements are already awaited.
        """
        _check_event(event)
        if self.client.retries > 0:
            fut = self._retry.put(event, args)
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError:
                raise AckTimeout(f"no acknowledgement for {event!r} within {timeout}s") from None
        return await self.emit_with_ack_once(event, args, timeout)

    call = emit_with_ack

    async def emit_with_ack_once(
        self, event: str, args: Sequence[Any], timeout: float | None
    ) -> Any:
        """Send an event once, without the retry queue, and wait for its acknowledgement.

        Raises:
            AckTimeout: no acknowledgement within ``timeout`` seconds.
            Disconnected: the connection dropped after the event was sent.
            BufferFull: not connected and the buffer is full, or ``max_pending_acks``
                acknowledgements are already awaited.
        """
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        pending = PendingAck(None, fut)
        ack_id = await self._send_event(event, args, pending, False)
        if timeout is not None and ack_id is not None:
            pending.timer = loop.call_later(timeout, self._ack_timed_out, ack_id, event, timeout)
        return await fut

    def _ack_timed_out(self, ack_id: int, event: str, timeout: float) -> None:
        pending = self._acks.pop(ack_id)
        if pending is None:
            return
        # An emit that waits in the buffer and timed out is not sent later.
        self._drop_buffered(ack_id)
        pending.fail(AckTimeout(f"no acknowledgement for {event!r} within {timeout}s"))

    def _drop_buffered(self, ack_id: int) -> None:
        buffer = self._state.buffer
        for item in list(buffer):
            if item[0] == ack_id:
                buffer.remove(item)

    def _call_with_ack_result(self, callback: Callable[..., Any], fut: asyncio.Future[Any]) -> None:
        """Run an emit's ``callback`` with the acknowledgement the retry queue got."""
        if fut.cancelled() or fut.exception() is not None:
            logger.info("emit abandoned: %s", None if fut.cancelled() else fut.exception())
            return
        self.client._call_handler(callback, ack_args(fut.result()), "ack callback")

    async def _send_event(
        self, event: str, args: Sequence[Any], pending: PendingAck | None, volatile: bool
    ) -> int | None:
        if pending is not None and len(self._acks) >= self.client.max_pending_acks:
            raise BufferFull(
                f"{self.namespace}: {len(self._acks)} acknowledgements already awaited"
                f" (max_pending_acks={self.client.max_pending_acks})"
            )
        ack_id = self._acks.next_id() if pending is not None else None
        parts = encode_event(self.namespace, event, args, ack_id)
        state = self._state
        engine = self.client._engine
        if state.connected and engine is not None and engine.open and not state.buffer:
            if ack_id is not None and pending is not None:
                pending.sent = True
                self._acks.add(ack_id, pending)
            try:
                await engine.send(*parts)
                return ack_id
            except ConnectionClosed:
                if ack_id is not None and pending is not None:
                    # Not sent after all: the ack waits with the packet in the buffer.
                    self._acks.pop(ack_id)
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
            self._acks.add(ack_id, pending)
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
            # An ack timeout may have dropped the packet from the buffer meanwhile.
            if buffer and buffer[0][1] is parts:
                buffer.popleft()
            self._acks.mark_sent(ack_id)

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
        self._acks.fail_all(ConnectError(f"{self.namespace}: {message}", self.namespace, data))
        self.client._fire(self, "connect_error", data)
        self.client._close_if_idle()

    def _set_disconnected(self, reason: str) -> None:
        state = self._state
        was_connected = state.connected
        state.connected = False
        state.recovered = state.recovered and was_connected
        # Acks of packets still in the buffer survive a disconnection (they go out later);
        # those of packets already sent are lost with the connection.
        self._acks.fail_all(
            Disconnected(f"{self.namespace} disconnected: {reason}"), sent_only=True
        )
        if was_connected:
            logger.info("%s disconnected: %s", self.namespace, reason)
            self.client._fire(self, "disconnect", reason)

    def _on_ack(self, packet: Packet) -> None:
        assert packet.id is not None
        args = list(packet.data or ())
        pending = self._acks.resolve(packet.id, args)
        if pending is None:
            logger.debug("%s: ack %d for nothing (late or duplicate)", self.namespace, packet.id)
            return
        if pending.callback is not None:
            self.client._call_handler(pending.callback, args)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<NamespaceSocket {self.namespace} {state}>"


def _check_event(event: str) -> None:
    if not isinstance(event, str) or not event:
        raise ValueError("the event name must be a non-empty str")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


def _consume(fut: asyncio.Future[Any]) -> None:
    """Retrieve a future's exception nobody awaits, so asyncio does not log it."""
    if not fut.cancelled():
        fut.exception()
