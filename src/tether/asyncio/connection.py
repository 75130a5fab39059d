"""The asyncio WebSocket: an ``asyncio.Protocol`` around the sans-I/O connection.

Two APIs on one object: the asyncio one (``async for message in ws``, ``await ws.send()``)
and the browser-like one (``on_open``, ``on_message``, ``on_error``, ``on_close``,
``ready_state``, ``buffered_amount``).

One concept per module; :class:`WebSocket` combines them as mixins, so a connection is one
object with one set of slots (small when idle, no indirection per message):

* this module: the ``asyncio.Protocol`` glue, the reading loop (``data_received``), the
  closing handshake and the callbacks;
* :mod:`.messages`: the bounded incoming queue (``recv()``, ``async for``, ``on_message``);
  when it holds ``max_queue`` messages, reading from the socket pauses;
* :mod:`.sending`: ``send()`` and outgoing backpressure (``write_limit``), :func:`broadcast`;
* :mod:`.keepalive`: pings, pongs and keepalive timeouts.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from ..exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
)
from ..protocol.connection import _CLOSED, _CLOSING, _CONNECTING, _OPEN, Connection, State
from ..protocol.events import BinaryMessage, CloseReceived, Pong, TextMessage
from ..protocol.frames import serialize_close
from ..protocol.handshake import Request, Response
from .keepalive import Keepalive
from .limits import Rate, TokenBucket
from .linger import LINGER_TIMEOUT, linger_close
from .messages import Data, MessageQueue
from .sending import Sender, broadcast

__all__ = ["Data", "WebSocket", "broadcast"]

logger = logging.getLogger("tether")
_ids = itertools.count(1)
_OK_CODES = frozenset({1000, 1001, 1005})
# Tasks running async callbacks (on_open, on_close, ... when they are coroutine functions).
# The loop keeps only weak references to tasks: without this set one could be garbage-
# collected mid-flight. Each task leaves it when done.
_callback_tasks: set[asyncio.Future[Any]] = set()


class _ConnLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every record with the connection id (also in ``record.conn_id``)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {})["conn_id"] = extra.get("conn_id")
        return f"[{extra.get('conn_id')}] {msg}", kwargs


class _ReadBuffer(threading.local):
    """One read buffer per thread, shared by every connection of its event loop.

    As a :class:`asyncio.BufferedProtocol`, a connection hands the transport a buffer to
    read into. The transport fills it and calls ``buffer_updated`` at once, which
    copies the bytes out, so one buffer serves every connection of a loop (and idle
    connections hold none). Over TLS this matters most: a plain ``data_received``
    protocol makes the TLS layer allocate its largest read size (256 KiB) for every
    read and shrink it, a mmap, page faults and a mremap per message.
    """

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_READ_BUFFER_SIZE))


_READ_BUFFER_SIZE = 256 * 1024
_read_buffer = _ReadBuffer()


class WebSocket(MessageQueue, Sender, Keepalive, asyncio.BufferedProtocol):
    """An open (or opening) WebSocket connection.

    Created by :func:`tether.serve` (passed to the handler) and :func:`tether.connect`;
    not instantiated directly.

    Attributes:
        id: a short id, also on every log record of this connection.
        request: the opening handshake request (path, query and headers).
        response: the opening handshake response.
        subprotocol: the negotiated subprotocol, or None.
        on_open: browser-like callback ``on_open()``.
        on_message: browser-like callback ``on_message(data)``; may be a coroutine
            function. Setting it switches this connection to callback delivery.
        on_error: browser-like callback ``on_error(exc)``: the connection failed.
        on_close: browser-like callback ``on_close(code, reason)``.
    """

    CONNECTING = _CONNECTING
    OPEN = _OPEN
    CLOSING = _CLOSING
    CLOSED = _CLOSED

    # Slots keep an idle connection small (no per-instance __dict__).
    __slots__ = (
        "_abnormal",
        "_close_timer",
        "_closed",
        "_cork",
        "_cork_size",
        "_direct",
        "_discarding",
        "_drain_waiter",
        "_held",
        "_keepalive",
        "_log",
        "_loop",
        "_messages",
        "_on_message",
        "_owner",
        "_ping_deadline",
        "_pings",
        "_pump",
        "_queued_bytes",
        "_rate_bucket",
        "_read_view",
        "_reading_paused",
        "_recv_waiter",
        "_resume_scheduled",
        "_send_lock",
        "_state_override",
        "_writing_paused",
        "close_timeout",
        "closed_by_user",
        "conn",
        "id",
        "max_queue",
        "max_queue_bytes",
        "messages_dropped",
        "on_close",
        "on_error",
        "on_open",
        "ping_interval",
        "ping_timeout",
        "request",
        "response",
        "subprotocol",
        "transport",
        "write_limit",
    )

    def __init__(
        self,
        connection: Connection,
        *,
        request: Request | None = None,
        response: Response | None = None,
        subprotocol: str | None = None,
        max_queue: int = 32,
        write_limit: int = 65536,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        message_rate: Rate | None = None,
    ) -> None:
        self.conn = connection
        # Incoming messages per second (a token bucket); past it the connection is
        # closed with 1008. None: no limit.
        self._rate_bucket = TokenBucket(message_rate) if message_rate is not None else None
        #: The byte bound of the incoming queue (shared with the protocol's, see
        #: :class:`~tether.protocol.Connection` ``max_queue_bytes``).
        self.max_queue_bytes = connection.max_queue_bytes
        self._queued_bytes = 0
        self._resume_scheduled = False
        connection.defer_failures = True
        self.id = f"{next(_ids):x}"
        self.request = request
        self.response = response
        # What holds this connection's place (a server's admission slot): its
        # ``release(ws)`` runs once, when the connection has closed.
        self._owner: Any = None
        self.subprotocol = subprotocol
        self.max_queue = max(1, max_queue)
        self.write_limit = write_limit
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._log: _ConnLogger | None = None
        self.on_open: Callable[[], Any] | None = None
        self._on_message: Callable[[Data], Any] | None = None
        self._direct: Callable[[Data], Any] | None = None
        self._cork: list[bytes] | None = None
        self._held = False  # reading held by the layer above (see hold_reading)
        # Set by close(): the application is done reading; what still comes before the
        # peer's close frame is dropped (RFC 6455 1.4), so a full queue cannot keep the
        # close frame unread.
        self._discarding = False
        self._cork_size = 0
        self.on_error: Callable[[BaseException], Any] | None = None
        self.on_close: Callable[[int, str], Any] | None = None
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # At most max_queue messages: a list (popped from the front) is smaller than a deque.
        self._messages: list[Data] = []
        self._recv_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_deadline: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # True once the TCP connection is closed; before that, None or the future that
        # someone waits on (made on demand: most connections never need it).
        self._closed: asyncio.Future[None] | bool | None = None
        self._send_lock: asyncio.Lock | None = None
        self._pump: asyncio.Task[None] | None = None
        self._abnormal: BaseException | None = None
        self.messages_dropped = 0
        self.closed_by_user = False
        self._state_override: State | None = None

    # ------------------------------------------------------------------ properties

    @property
    def log(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """This connection's logger: every record carries the connection id."""
        log = self._log
        if log is None:
            log = self._log = _ConnLogger(logger, {"conn_id": self.id})
        return log

    @property
    def ready_state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED, as in the WHATWG WebSocket."""
        if self._state_override is not None:
            return self._state_override
        return self.conn.state

    @property
    def state(self) -> State:
        """Alias of :attr:`ready_state`."""
        return self.ready_state

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for sending but not yet handed to the kernel."""
        transport = self.transport
        if transport is None or (transport.is_closing() and self._closed is True):
            return 0
        return transport.get_write_buffer_size() + self._cork_size

    @property
    def close_code(self) -> int | None:
        """The close code received from the peer (1006 for none); None while open."""
        if self.conn.state is not _CLOSED and self.conn.close_rcvd is None:
            return None
        return self.conn.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received from the peer; None while open."""
        if self.close_code is None:
            return None
        return self.conn.close_reason

    @property
    def extensions(self) -> str | None:
        """The negotiated ``Sec-WebSocket-Extensions`` value, or None."""
        deflate = self.conn.deflate
        return deflate.params if deflate is not None else None

    @property
    def local_address(self) -> Any:
        """The local socket address."""
        return self.transport.get_extra_info("sockname") if self.transport else None

    @property
    def remote_address(self) -> Any:
        """The peer's socket address."""
        return self.transport.get_extra_info("peername") if self.transport else None

    @property
    def closed(self) -> bool:
        """Whether the TCP connection is closed."""
        return self._closed is True

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._read_view = _read_buffer.view  # this thread's (the loop's) buffer
        transport.set_write_buffer_limits(high=self.write_limit)  # type: ignore[attr-defined]
        self._schedule_keepalive()

    def attach(self, transport: asyncio.Transport, leftover: bytes = b"") -> None:
        """Take over a transport whose HTTP handshake is complete."""
        transport.set_protocol(self)
        self.connection_made(transport)
        if leftover:
            self.data_received(leftover)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        # The parser copies what it keeps (the buffer is the next read's too).
        with self._read_view[:nbytes] as data:
            self.data_received(data)

    def data_received(self, data: bytes | memoryview) -> None:
        conn = self.conn
        if self._rate_bucket is None and not self._discarding:
            # Fast lane: one small frame in this read, its message without an event.
            message = conn.receive_message(data)
            if message is not None:
                direct = self._direct
                if direct is not None:
                    self._call_direct(direct, message)
                else:
                    self._queue_message(message)
                    self._after_queueing()
                self._after_input(conn)
                return
        conn.receive_data(data)
        events = conn.events_received()
        if events:
            direct = self._direct
            bucket = self._rate_bucket
            now = self._loop.time() if bucket is not None else 0.0
            for event in events:
                cls = event.__class__
                if cls is TextMessage or cls is BinaryMessage:
                    if bucket is not None and not bucket.take(now):
                        self._over_rate()
                        bucket = None  # the rest of this batch is dropped below
                    if self._discarding:
                        continue
                    if direct is not None:
                        self._call_direct(direct, event.data)  # type: ignore[union-attr]
                    else:
                        self._queue_message(event.data)  # type: ignore[union-attr]
                elif cls is Pong:
                    self._on_pong(event.payload)  # type: ignore[union-attr]
                elif cls is CloseReceived:
                    self.log.debug("close received: %s %s", event.code, event.reason)  # type: ignore[union-attr]
            self._after_queueing()
        if conn.stalled:
            # Parsing stopped with input left in the buffer: read no more until it is
            # parsed (the compressed bytes held stay bounded by one read).
            if not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
            if not self._resume_scheduled and self._should_read():
                # The frame budget of one call: go on in a later loop iteration, so other
                # connections get their turn.
                self._resume_scheduled = True
                self._loop.call_soon(self._resume_parsing)
        self._after_input(conn)

    def _call_direct(self, direct: Callable[[Data], Any], message: Data) -> None:
        # Browser-like delivery: a plain callback runs right here, in order, with no
        # queue and no task (the fastest path).
        try:
            direct(message)
        except Exception as exc:
            self.log.exception("error in on_message callback")
            self._fire("on_error", exc)

    def _queue_message(self, message: Data) -> None:
        self._messages.append(message)
        self._queued_bytes += len(message)

    def _after_queueing(self) -> None:
        """Wake the reader and apply the queue's bounds after messages were queued."""
        messages = self._messages
        waiter = self._recv_waiter
        if waiter is not None and messages:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        self.conn.held_bytes = 0 if self._discarding else self._queued_bytes
        if (
            (len(messages) >= self.max_queue or self._queued_bytes >= self.max_queue_bytes)
            and not self._reading_paused
            and not self._discarding
        ):
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _after_input(self, conn: Connection) -> None:
        """What every read ends with: write what the protocol queued, close steps."""
        out = conn.data_to_send()
        if out:
            self._write(b"".join(out) if len(out) > 1 else out[0])
        if conn.pending_failure is not None:
            if self._direct is not None or not self._messages:
                self._apply_failure()
            elif self._close_timer is None:
                # Give the application close_timeout to handle what came before the bad
                # frame (recv() applies the failure as soon as the queue is empty).
                self._close_timer = self._loop.call_later(self.close_timeout, self._apply_failure)
        if conn.state is not _OPEN:
            self._after_close_step()
        elif self._writing_paused and not self._reading_paused and self._pause_on_write():
            # A callback that answers faster than the peer reads, or a client that does
            # not read: stop reading until the outgoing buffer drains (resume_writing
            # resumes), so nothing the peer sends makes us queue output without bound.
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _over_rate(self) -> None:
        """The peer sends more messages per second than ``message_rate`` allows: close
        with 1008 (policy violation) and drop what it still sends before its close."""
        if self.conn.state is not _OPEN:
            return
        self.log.info("message rate exceeded: closing (1008)")
        self.conn.send_close(1008, "message rate exceeded")
        self._discarding = True
        self.conn.held_bytes = 0
        self._flush_conn()

    def _pause_on_write(self) -> bool:
        # The server stops reading a client that does not read. Not a client: if both
        # ends did, a bulk transfer both ways would deadlock (each waiting for the other
        # to read); pongs stay bounded there all the same (Connection.hold_pongs).
        return self._direct is not None or not self.conn._is_client

    def _should_read(self) -> bool:
        """Whether reading may resume (hysteresis: the queue down to a quarter)."""
        if self._discarding:
            return True
        if self._held:
            return False
        if len(self._messages) > self.max_queue // 4:
            return False
        if self._queued_bytes > self.max_queue_bytes // 4 and self._queued_bytes:
            return False
        return not (self._writing_paused and self._pause_on_write())

    def _resume_parsing(self) -> None:
        """Parse what waits in the buffer, then read again if nothing holds reading."""
        self._resume_scheduled = False
        if not self._reading_paused or not self._should_read():
            return
        transport = self.transport
        if transport is None or self._closed is True:
            return
        self._reading_paused = False
        if self.conn.stalled:
            self.data_received(b"")
        if not self._reading_paused and not transport.is_closing():
            transport.resume_reading()

    def _apply_failure(self) -> None:
        conn = self.conn
        if conn.pending_failure is None:
            return
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        conn.apply_pending_failure()
        out = conn.data_to_send()
        if out and self.transport is not None:
            self._write(b"".join(out))
        self._after_close_step()

    def _after_close_step(self) -> None:
        conn = self.conn
        if conn.failure is not None and self._abnormal is None:
            self._abnormal = conn.failure
            self.log.info("connection failed: %s (close %s)", conn.failure, conn.failure.code)
            self._fire("on_error", conn.failure)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if conn.should_close_transport:
            if conn.failure is not None and not conn.eof_received:
                # The peer may still be sending (the rest of an oversized message, frames
                # after a protocol error): closing now would reset the connection and
                # the peer would lose the close frame that says why. Linger instead.
                # The application sees the connection closed now, not when the linger ends.
                linger_close(transport, timeout=min(self.close_timeout, LINGER_TIMEOUT))
                self.connection_lost(None)
            else:
                transport.close()
        elif self._close_timer is None:
            # The client waits for the server to close TCP, but not forever.
            self._close_timer = self._loop.call_later(self.close_timeout, self._abort)

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._cork = None
        self._cork_size = 0
        if not self.conn.eof_received:
            self.conn.receive_eof()
        if exc is not None and self._abnormal is None and self.conn.close_rcvd is None:
            self._abnormal = exc
        for handle in (self._keepalive, self._ping_deadline, self._close_timer):
            if handle is not None:
                handle.cancel()
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._recv_waiter = None
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)
        self._fail_pings(self._closed_exception())
        closed = self._closed
        self._closed = True
        if isinstance(closed, asyncio.Future) and not closed.done():
            closed.set_result(None)
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.release(self)
        self.log.debug("closed: code %s", self.conn.close_code)
        self._fire("on_close", self.conn.close_code, self.conn.close_reason)

    def hold_reading(self, held: bool) -> None:
        """Stop (True) or allow again (False) reading from the socket, for a layer above
        that has too much work queued; the connection's own flow control still applies."""
        self._held = held
        transport = self.transport
        if transport is None or transport.is_closing() or self._closed is True:
            return
        if held:
            transport.pause_reading()
        elif not self._reading_paused:
            transport.resume_reading()

    def pause_writing(self) -> None:
        self._writing_paused = True
        # The peer does not read: answer only its most recent ping, once it does.
        self.conn.hold_pongs = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        conn = self.conn
        conn.release_pongs()
        out = conn.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self._write(b"".join(out))
        if self._reading_paused:
            self._resume_parsing()
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _raise_not_open(self) -> NoReturn:
        if self.ready_state is _CONNECTING:
            raise InvalidState("the connection is not open yet")
        raise self._closed_exception()

    # ------------------------------------------------------------------ closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait for the TCP connection to close.

        Bounded by ``close_timeout``; after it the connection is aborted.

        Raises:
            ValueError: an invalid close code or a reason over 123 bytes.
        """
        conn = self.conn
        self.closed_by_user = True
        if self.transport is None:
            self._state_override = _CLOSED
            return
        if conn.state is _OPEN:
            conn.send_close(code, reason)
            self._flush_conn()
            self._after_close_step()
            self._discarding = True
            self._held = False
            conn.held_bytes = 0
            if self._reading_paused and not self._resume_scheduled:
                self._resume_scheduled = True
                self._loop.call_soon(self._resume_parsing)
        else:
            # validate arguments all the same: misuse raises at once
            serialize_close(code, reason)
        if self._closed is True:
            return
        # Bounded by close_timeout: a timer aborts the TCP connection (no extra task).
        deadline = self._loop.call_later(self.close_timeout, self._abort)
        try:
            await asyncio.shield(self._closed_future())
        finally:
            deadline.cancel()

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await asyncio.shield(self._closed_future())

    def _closed_future(self) -> asyncio.Future[None]:
        """A future done when the TCP connection is closed."""
        closed = self._closed
        if isinstance(closed, asyncio.Future):
            return closed
        future: asyncio.Future[None] = self._loop.create_future()
        if closed is True:
            future.set_result(None)
        else:
            self._closed = future
        return future

    def _abort(self) -> None:
        if self.transport is not None and self._closed is not True:
            self.log.debug("aborting the TCP connection")
            self.transport.abort()

    def _closed_exception(self) -> ConnectionClosed:
        conn = self.conn
        rcvd = conn.close_rcvd
        sent = conn.close_sent
        code = rcvd.code if rcvd is not None else 1006
        reason = rcvd.reason if rcvd is not None else ""
        sent_code = sent[0] if sent is not None else None
        if (
            rcvd is not None
            and sent is not None
            and rcvd.code in _OK_CODES
            and sent[0] in _OK_CODES
            and conn.failure is None
        ):
            return ConnectionClosedOK(code, reason, sent_code)
        exc = ConnectionClosedError(code, reason, sent_code)
        cause = conn.failure or self._abnormal
        if cause is not None and cause is not exc:
            exc.__cause__ = cause
        return exc

    # ------------------------------------------------------------------ callbacks

    def _fire(self, name: str, *args: Any) -> None:
        callback = getattr(self, name)
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                self._track(asyncio.ensure_future(result))
        except Exception:
            self.log.exception("error in %s callback", name)

    def _track(self, task: asyncio.Future[Any]) -> None:
        """Keep a reference to a callback task until it is done, and log its failure."""
        _callback_tasks.add(task)
        task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Future[Any]) -> None:
        _callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("error in callback", exc_info=task.exception())

    def start_callbacks(self) -> None:
        """Deliver messages to ``on_message`` (browser-like API), in order.

        Called once the connection is open; a no-op without ``on_message``.
        """
        self._fire("on_open")
        if self._on_message is not None and self._pump is None and self._direct is None:
            self.on_message = self._on_message

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.ready_state.name}>"
