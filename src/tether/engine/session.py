"""One Engine.IO session, whatever transport carries it, and what it tells the layer above.

Every per-session queue is an :class:`~tether.engine.outbox.Outbox`, bounded in bytes and
in messages; what happens to a client that falls behind is the slow-consumer policy each
message was sent with (see :mod:`tether.engine.outbox`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..asyncio.limits import TokenBucket
from ..exceptions import ConnectionClosed
from ..protocol.handshake import Request
from .outbox import Outbox, Policy
from .packets import (
    _EIO_CLOSE,
    _EIO_MESSAGE,
    _EIO_NOOP,
    _EIO_PING,
    _EIO_PONG,
    Packet,
    PacketType,
    decode_packet,
    encode_packet,
)
from .transport import PreparedMessage, Transport

if TYPE_CHECKING:
    from .server import EngineServer

__all__ = ["Session", "SessionHandler", "SessionState"]

logger = logging.getLogger("tether.engine")

_CLOSE = Packet(PacketType.CLOSE)
_PING = Packet(PacketType.PING)


class SessionState(enum.Enum):
    """The life of a session."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


# Enum members read on every message, as module constants: on Python 3.11 each
# `Enum.MEMBER` lookup costs about 60 ns (EnumType.__getattr__ slows every class
# attribute lookup), a plain global about 10.
_SESSION_CLOSED = SessionState.CLOSED
_SESSION_CLOSING = SessionState.CLOSING
_SESSION_OPEN = SessionState.OPEN


class SessionHandler(Protocol):
    """What the engine tells the layer above."""

    def on_open(self, session: Session) -> None:
        """A new session is open."""

    def on_message(self, session: Session, data: str | bytes) -> None:
        """A MESSAGE packet arrived."""

    def on_close(self, session: Session, reason: str) -> None:
        """The session closed; ``reason`` as in the reference server."""


def _compress_flag(compress: bool) -> bool | None:
    # None lets the connection decide (permessage-deflate, if negotiated, above its
    # threshold); False forces an uncompressed frame.
    return None if compress else False


class Session:
    """One Engine.IO session (a client), whatever transport carries it.

    Attributes:
        sid: the session id.
        request: the handshake request (query, headers).
        transport: ``"polling"`` or ``"websocket"``.
        state: OPEN, CLOSING or CLOSED.
        data: free slot for the layer above.
    """

    __slots__ = (
        "_backlog",
        "_close_pending",
        "_deadline",
        "_deflate",
        "_drainer",
        "_ping_timer",
        "_poll",
        "_probed",
        "_queue",
        "_rate_bucket",
        "_raw_write",
        "_room_waiters",
        "_upgrading",
        "closed_reason",
        "data",
        "engine",
        "remote_address",
        "request",
        "sid",
        "state",
        "transport",
        "ws",
    )

    def __init__(self, engine: EngineServer, sid: str, request: Request, transport: str) -> None:
        self.engine = engine
        self.sid = sid
        self.request = request
        self.transport = transport
        self.state = _SESSION_OPEN
        self.ws: Transport | None = None
        self.data: Any = None
        self.remote_address: Any = None
        self.closed_reason: str | None = None
        max_bytes, max_items = engine.max_buffered_bytes, engine.max_buffered_packets
        self._queue: Outbox[Packet] = Outbox(max_bytes, max_items)  # polling outbox
        # WebSocket outbox: (message, compress flag of send_nowait)
        self._backlog: Outbox[tuple[str | bytes, bool | None]] = Outbox(max_bytes, max_items)
        self._room_waiters: list[asyncio.Future[None]] | None = None
        self._poll: asyncio.Future[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._raw_write: Callable[[bytes], None] | None = None
        self._deflate = False
        self._upgrading = False
        self._close_pending = False
        self._probed = False
        self._rate_bucket: TokenBucket | None = None  # the engine's message_rate

    def _attach(self, ws: Transport) -> None:
        """Carry the session over ``ws`` (the upgrade may still be under way)."""
        self.ws = ws
        # Shared pre-encoded frames only where the transport can write them and they
        # need no per-connection compression.
        self._raw_write = getattr(ws, "write_frame", None)
        self._deflate = ws.extensions is not None and "permessage-deflate" in ws.extensions

    def _detach(self) -> None:
        self.ws = None
        self._raw_write = None
        self._deflate = False

    # ----------------------------------------------------------------- state for the layer above

    @property
    def writable(self) -> bool:
        """Whether a message sent now goes out without waiting in a queue: the WebSocket
        buffer is under its high-water mark, or on polling a GET is waiting."""
        ws = self.ws
        if ws is not None and not self._upgrading:
            return ws.writable and not self._backlog
        return self._poll is not None and not self._poll.done()

    def hold_reading(self, held: bool) -> bool:
        """Stop (True) or resume (False) reading from the client, for a layer above with
        too much work queued.

        Returns:
            Whether reading can be held: False on polling, where the request is already
            read (the caller then needs another policy).
        """
        ws = self.ws
        if ws is None or self._upgrading:
            return False
        ws.hold_reading(held)
        return True

    # ----------------------------------------------------------------- sending

    @property
    def outbox(self) -> Outbox[Any]:
        """What waits for the client now (the polling queue, or the WebSocket's backlog
        once the session is upgraded)."""
        if self.ws is not None and not self._upgrading:
            return self._backlog
        return self._queue

    def send(
        self,
        data: str | bytes,
        *,
        compress: bool = False,
        policy: Policy | None = None,
        key: str | None = None,
    ) -> None:
        """Queue a MESSAGE packet; never waits. A no-op once the session is closing.

        Args:
            data: the payload.
            compress: allow permessage-deflate for this message (WebSocket, where
                negotiated).
            policy: the slow-consumer policy for this message (None: the engine's).
            key: the coalescing key (with ``policy="coalesce"``).
        """
        if self.state is not _SESSION_OPEN:
            return
        engine = self.engine
        engine.messages_out += 1
        engine.bytes_out += len(data)
        policy = self._admit(policy)
        if policy is None:
            return
        ws = self.ws
        if ws is None or self._upgrading:
            self._enqueue(Packet(_EIO_MESSAGE, data), policy, key)
            return
        frame = data if isinstance(data, bytes) else "4" + data
        self._write(ws, frame, _compress_flag(compress), policy, key)

    def send_prepared(
        self, message: PreparedMessage, policy: Policy | None = None, key: str | None = None
    ) -> None:
        """Queue a message encoded once for many sessions (see :class:`PreparedMessage`).
        The caller counts it (``engine.count_out``), once for all of them."""
        raw = self._raw_write
        ws = self.ws
        if (
            raw is not None  # the hot path of a broadcast: the shared frame, as is
            and ws is not None
            and ws.writable
            and not self._backlog
            and self.state is _SESSION_OPEN
            and not self._upgrading
            and not (message.compress and self._deflate)
        ):
            try:
                raw(message.wire)
            except ConnectionClosed:
                self.close("transport close")
            return
        if self.state is not _SESSION_OPEN:
            return
        policy = self._admit(policy)
        if policy is None:
            return
        if ws is None or self._upgrading:
            self._enqueue(Packet(_EIO_MESSAGE, message.data), policy, key)
            return
        self._write(ws, message.frame, _compress_flag(message.compress), policy, key)

    def _send_encoded(self, frame: str | bytes) -> None:
        """Queue an already encoded Engine.IO packet (``"4..."`` or raw bytes)."""
        ws = self.ws
        policy = self.engine.slow_consumer_policy
        if ws is None or self._upgrading:
            if isinstance(frame, bytes):
                self._enqueue(Packet(_EIO_MESSAGE, frame), policy, None)
            else:
                self._enqueue(decode_packet(frame), policy, None)
            return
        if self.state is _SESSION_OPEN:
            self._write(ws, frame, False, policy, None)

    def _write(
        self,
        ws: Transport,
        frame: str | bytes,
        compress: bool | None,
        policy: Policy,
        key: str | None,
    ) -> None:
        if self._backlog or not ws.writable:
            self._push_backlog(frame, compress, policy, key)
            return
        try:
            ws.send_nowait(frame, compress=compress)
        except ConnectionClosed:
            self.close("transport close")

    def _admit(self, policy: Policy | None) -> Policy | None:
        """The policy a message goes out under, or None if it is dropped at once
        (``drop`` while the client cannot take it: volatile)."""
        policy = policy or self.engine.slow_consumer_policy
        if policy == "drop" and not self.writable:
            self._dropped(policy)
            return None
        return policy

    def _dropped(self, policy: Policy, count: int = 1) -> None:
        self.engine.metrics.inc("tether_outbox_dropped_total", count, policy=policy)

    def _pushed(self, outcome: str, outbox: Outbox[Any], policy: Policy) -> bool:
        """Count what :meth:`Outbox.push` did; False if the session was closed."""
        if outcome == "queued":
            return True
        if outcome == "overflow":
            self._slow_consumer(policy)
            return False
        if outcome == "coalesced":
            self.engine.metrics.inc("tether_outbox_coalesced_total", policy=policy)
        elif outbox.evicted:
            self._dropped(policy, outbox.evicted)  # older messages made room
        else:
            self._dropped(policy)
        return True

    # ----------------------------------------------------------------- backpressure

    @property
    def full(self) -> bool:
        """Whether the client's outbox is at its cap (a ``wait`` emitter waits)."""
        return self.outbox.full

    async def wait_room(self, timeout: float | None) -> bool:
        """Wait until the outbox is under its cap (or the session closes).

        Returns:
            False if it was still full after ``timeout`` seconds.
        """
        if not self.outbox.full or self.state is not _SESSION_OPEN:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._room_waiters is None:
            self._room_waiters = []
        self._room_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False
        finally:
            waiters = self._room_waiters
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
        return True

    def _room(self, force: bool = False) -> None:
        waiters = self._room_waiters
        if waiters and (force or not self.outbox.full):
            self._room_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _slow_consumer(self, policy: Policy) -> None:
        self.engine.slow_consumer_closes += 1
        self.engine.metrics.inc("tether_slow_consumer_disconnects_total", policy=policy)
        outbox = self.outbox
        logger.warning(
            "session %s: outbox full (%d messages, %d bytes), closing (slow consumer, %s)",
            self.sid,
            len(outbox),
            outbox.bytes,
            policy,
        )
        self.close("transport error", drain=False)

    def _push_backlog(
        self, frame: str | bytes, compress: bool | None, policy: Policy, key: str | None
    ) -> None:
        backlog = self._backlog
        if not self._pushed(
            backlog.push((frame, compress), len(frame), policy, key), backlog, policy
        ):
            return
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain_backlog())

    def _flush_backlog(self, ws: Transport, *, wait_writable: bool) -> None:
        backlog = self._backlog
        while backlog and (not wait_writable or ws.writable):
            frame, compress = backlog.popleft()
            ws.send_nowait(frame, compress=compress)
        self._room()

    async def _drain_backlog(self) -> None:
        ws = self.ws
        try:
            while self._backlog and ws is not None and self.state is _SESSION_OPEN:
                await ws.drain()
                self._flush_backlog(ws, wait_writable=True)
        except ConnectionClosed:
            pass
        finally:
            self._drainer = None

    def _enqueue(
        self, packet: Packet, policy: Policy | None = None, key: str | None = None
    ) -> None:
        queue = self._queue
        if policy is None:  # a control packet: never dropped
            queue.append(packet, 1)
        else:
            data = packet.data
            size = len(data) + 1 if data is not None else 1
            if not self._pushed(queue.push(packet, size, policy, key), queue, policy):
                return
        self._wake_poll()

    def _wake_poll(self) -> None:
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(None)

    def _drain_queue(self) -> list[Packet]:
        packets = self._queue.take_all()
        self._room()
        if self.state is _SESSION_CLOSING:
            if self._close_pending:
                self._close_pending = False
                self._queue.append(_CLOSE)
            else:
                self._finish_close()
        return packets

    def _finish_close(self) -> None:
        self.state = _SESSION_CLOSED
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.engine._sessions.pop(self.sid, None)

    def _send_control(self, packet: Packet) -> None:
        ws = self.ws
        if ws is not None and not self._upgrading:
            try:
                ws.send_nowait(encode_packet(packet, binary_supported=True), compress=False)
            except ConnectionClosed:
                self.close("transport close")
        else:
            self._enqueue(packet)

    # ----------------------------------------------------------------- heartbeat

    def _schedule_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self.engine.ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.state is not _SESSION_OPEN:
            return
        self._send_control(_PING)
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.engine.ping_timeout, self._ping_timeout)

    def _ping_timeout(self) -> None:
        self._deadline = None
        logger.info("session %s: no pong in time", self.sid)
        self.close("ping timeout", drain=False)

    def _on_pong(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._schedule_ping()

    # ----------------------------------------------------------------- receiving

    def _on_packet(self, packet: Packet) -> None:
        ptype = packet.type
        if ptype is _EIO_MESSAGE:
            data = packet.data
            assert data is not None
            engine = self.engine
            engine.messages_in += 1
            engine.bytes_in += len(data)
            engine.handler.on_message(self, data)
        elif ptype is _EIO_PONG:
            self._on_pong()
        elif ptype is _EIO_CLOSE:
            self.close("transport close", send_close=False)
        elif ptype is _EIO_PING:
            self._send_control(Packet(_EIO_PONG, packet.data))
        elif ptype is _EIO_NOOP:
            pass
        else:
            self.close("parse error", drain=False)

    # ----------------------------------------------------------------- closing

    def close(
        self,
        reason: str = "forced close",
        *,
        send_close: bool = True,
        drain: bool = True,
    ) -> None:
        """Close the session; the handler's ``on_close`` gets ``reason``.

        Args:
            reason: the disconnect reason.
            send_close: send the close packet to a polling client.
            drain: a server-initiated close (the default): what is queued is delivered
                first and, on polling without a GET waiting, the session lingers until
                the next GET takes the close packet (at most pingInterval +
                pingTimeout). Error closes (parse error, transport error, ping timeout)
                pass False: the session is gone at once, as with the reference server.
        """
        if self.state is not _SESSION_OPEN:
            return
        self.closed_reason = reason
        for timer in (self._ping_timer, self._deadline):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._deadline = None
        if self._drainer is not None:
            self._drainer.cancel()
        ws = self.ws
        if ws is not None and self._upgrading:
            # An unfinished upgrade: the session is still a polling one; drop the probe.
            self.engine._spawn(ws.close(1000))
            ws = None
        if ws is not None:
            if drain:
                try:
                    self._flush_backlog(ws, wait_writable=False)  # max_buffered_packets
                except ConnectionClosed:
                    pass
            self.engine._spawn(ws.close(1000))
        self._backlog.clear()
        self._room(force=True)
        poll = self._poll
        poll_waiting = poll is not None and not poll.done()
        if drain and send_close and ws is None and (self._queue or not poll_waiting):
            # Deliver the queue with one GET and the close packet with the next, as the
            # reference server does: clients handle a close packet before the packets
            # that precede it in the same payload.
            self.state = _SESSION_CLOSING
            if self._queue:
                self._close_pending = True
            else:
                self._queue.append(_CLOSE)
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(
                self.engine.ping_interval + self.engine.ping_timeout, self._finish_close
            )
        else:
            if send_close and ws is None:
                self._queue.append(_CLOSE)  # for a GET waiting now
            self._finish_close()
        self._wake_poll()
        try:
            self.engine.handler.on_close(self, reason)
        except Exception:
            logger.exception("error in on_close handler")
