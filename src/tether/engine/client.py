"""The asyncio Engine.IO v4 client: HTTP long-polling, WebSocket, and the upgrade between them.

One :class:`EngineClient` is one Engine.IO session. It does not reconnect: the Socket.IO
client above it opens a new session after a loss.

Transports (engine.io-protocol README, "Transports"):

* ``polling``: :class:`~tether.engine.client_polling.PollingTransport`, two keep-alive
  connections of the asyncio layer's small HTTP/1.1 client (one for the long-polling
  ``GET`` requests, one for the ``POST`` requests, so a write never waits behind a poll).
* ``websocket``: :func:`tether.connect`, one Engine.IO packet per frame.

With ``transports=["polling", "websocket"]`` (the default) the session opens on polling and
then probes a WebSocket (``2probe`` / ``3probe``); once the probe answers, polling is paused
(the server flushes the pending ``GET`` with a ``noop``), the pending writes are flushed,
``5`` (upgrade) is sent on the WebSocket and the session continues there. When the probe
fails (a proxy refuses the upgrade: connection error, non-101, timeout) the session stays on
polling and keeps working.

Heartbeats (README "Heartbeat"): the server pings every ``pingInterval``; the client answers
each ping with a pong. When no ping arrives for ``pingInterval + pingTimeout`` the session is
considered lost (close reason ``"ping timeout"``).

Bounded buffers: outgoing packets wait in a queue of at most ``max_outbox`` packets
(:meth:`EngineClient.send` waits while it is full); incoming messages are handed to the
``on_message`` coroutine one at a time, in order, and the transport is not read while it runs,
so a slow consumer pushes back on the server. ``POST`` bodies respect the server's
``maxPayload``: packets are split over several requests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

from ..asyncio.client import connect as ws_connect
from ..asyncio.connection import WebSocket
from ..asyncio.httpclient import header_list
from ..exceptions import (
    ConnectionClosed,
    EngineConnectionError,
    InvalidHandshake,
    InvalidState,
)
from .client_polling import PollingTransport
from .client_url import EngineURL, parse_url
from .packets import (
    PROBE,
    EnginePacketError,
    OpenPayload,
    Packet,
    PacketType,
    decode_packet,
    encode_packet,
    encode_payload,
)

__all__ = [
    "TRANSPORTS",
    "EngineClient",
    "EngineConnectionError",
    "EngineURL",
    "parse_url",
]

logger = logging.getLogger("tether.engine.client")

#: The transports this client implements, in the order of the default preference.
TRANSPORTS = ("polling", "websocket")

MessageHandler = Callable[[str | bytes], Awaitable[None]]
CloseHandler = Callable[[str], None]


# --------------------------------------------------------------------------- the session


class EngineClient:
    """One Engine.IO v4 client session.

    Args:
        url: the server URL (``http://``, ``https://``, ``ws://`` or ``wss://``).
        on_message: coroutine called with each ``MESSAGE`` payload (str or bytes), in order;
            reading pauses while it runs.
        on_close: called once, with the reason (``"io client disconnect"``,
            ``"transport close"``, ``"transport error"``, ``"ping timeout"``,
            ``"parse error"``), when the session ends after having opened.
        path: the Engine.IO endpoint (``/socket.io/`` for Socket.IO servers).
        transports: ``"polling"`` and/or ``"websocket"``; the session opens on the first and
            upgrades to ``"websocket"`` when it is listed after ``"polling"``.
        headers: extra HTTP headers for every request and the WebSocket handshake.
        ssl: TLS context for ``https``/``wss``.
        open_timeout: seconds for the handshake (and for the upgrade probe).
        request_timeout: the bound on one ``POST`` (a ``GET`` is bounded by the heartbeat).
        max_message_size: the largest response body or WebSocket message accepted.
        max_outbox: outgoing packets buffered before :meth:`send` waits.
        compression: permessage-deflate for the WebSocket transport (``"deflate"`` or None).
    """

    def __init__(
        self,
        url: str,
        *,
        on_message: MessageHandler,
        on_close: CloseHandler | None = None,
        path: str = "/engine.io/",
        transports: Sequence[str] = TRANSPORTS,
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10.0,
        request_timeout: float = 20.0,
        max_message_size: int = 16 * 2**20,
        max_outbox: int = 1024,
        compression: str | None = None,
    ) -> None:
        transports = list(transports)
        if not transports or any(t not in TRANSPORTS for t in transports):
            raise ValueError(f"transports must be a non-empty subset of {TRANSPORTS}")
        if max_outbox < 1:
            raise ValueError("max_outbox must be at least 1")
        self.url = parse_url(url, path)
        self.transports = transports
        self.headers = header_list(headers)
        self.ssl = ssl
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self.max_message_size = max_message_size
        self.max_outbox = max_outbox
        self.compression = compression
        self.on_message = on_message
        self.on_close = on_close
        self.log = logger

        #: The handshake data once open.
        self.handshake: OpenPayload | None = None
        #: The transport in use: ``"polling"`` or ``"websocket"`` (None before opening).
        self.transport: str | None = None
        #: Why the session ended, once it has.
        self.close_reason: str | None = None
        #: Whether the polling -> WebSocket upgrade was tried and failed.
        self.upgrade_failed = False
        #: Server pings answered on this session (heartbeats seen alive).
        self.pings_received = 0

        self._loop = asyncio.get_running_loop()
        self._outbox: collections.deque[Packet] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._outbox_space = asyncio.Event()
        self._outbox_space.set()
        self._write_lock = asyncio.Lock()
        self._paused = False
        self._ws: WebSocket | None = None
        self._probe: WebSocket | None = None
        self._polling: PollingTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = self._loop.create_future()
        self._opened = False
        self._closing = False

    # ------------------------------------------------------------------ properties

    @property
    def sid(self) -> str | None:
        """The session id, once open."""
        return self.handshake.sid if self.handshake else None

    @property
    def open(self) -> bool:
        """Whether the session is open (not closing or closed)."""
        return self._opened and not self._closed.done() and not self._closing

    @property
    def max_payload(self) -> int | None:
        """The server's ``maxPayload`` (bytes per ``POST``), when it announced one."""
        return self.handshake.max_payload if self.handshake else None

    # ------------------------------------------------------------------ opening

    async def connect(self) -> None:
        """Open the session on the first transport (then upgrade in the background).

        Raises:
            EngineConnectionError: the server is unreachable, refused the handshake (has
                ``status``), or the handshake was malformed or too slow.
            InvalidState: called twice.
        """
        if self._opened or self._closed.done():
            raise InvalidState("an EngineClient opens once")
        try:
            async with asyncio.timeout(self.open_timeout):
                if self.transports[0] == "polling":
                    first = await self._open_polling()
                else:
                    first = await self._open_websocket()
        except TimeoutError:
            self._teardown()
            raise EngineConnectionError(
                f"Engine.IO handshake timed out after {self.open_timeout}s"
            ) from None
        except BaseException:
            self._teardown()
            raise
        self._opened = True
        self._reset_watchdog()
        self._spawn(self._writer())
        if self.transport == "polling":
            self._reader = self._spawn(self._poll_loop(first))
            if "websocket" in self.transports[1:] and "websocket" in self.handshake_upgrades:
                self._spawn(self._upgrade())
        else:
            self._reader = self._spawn(self._ws_loop())
        self.log.debug("session %s open on %s", self.sid, self.transport)

    @property
    def handshake_upgrades(self) -> tuple[str, ...]:
        return self.handshake.upgrades if self.handshake else ()

    async def _open_polling(self) -> list[Packet]:
        self._polling = PollingTransport(
            self.url,
            ssl=self.ssl,
            headers=self.headers,
            max_body_size=self.max_message_size,
            request_timeout=self.request_timeout,
        )
        try:
            packets = await self._polling.receive(self.open_timeout)
        except EnginePacketError as exc:
            raise EngineConnectionError(f"malformed handshake: {exc}") from exc
        if packets[0].type is not PacketType.OPEN or not isinstance(packets[0].data, str):
            raise EngineConnectionError("the handshake did not start with an OPEN packet")
        self._set_handshake(packets[0].data)
        self.transport = "polling"
        return packets[1:]

    async def _connect_websocket(self, **params: str) -> WebSocket:
        try:
            return await ws_connect(
                self.url.websocket_uri(transport="websocket", **params),
                ssl=self.ssl if self.url.secure else None,
                compression=self.compression,
                additional_headers=self.headers,
                max_size=self.max_message_size,
                # Engine.IO has its own heartbeat.
                ping_interval=None,
                ping_timeout=None,
                open_timeout=self.open_timeout,
                close_timeout=2.0,
            )
        except (OSError, InvalidHandshake) as exc:
            status = getattr(exc, "status", None)
            raise EngineConnectionError(f"WebSocket connection failed: {exc}", status) from exc

    async def _open_websocket(self) -> list[Packet]:
        ws = self._ws = await self._connect_websocket()
        try:
            message = await ws.recv()
            packet = decode_packet(message)
        except (ConnectionClosed, EnginePacketError) as exc:
            raise EngineConnectionError(f"WebSocket handshake failed: {exc}") from exc
        if packet.type is not PacketType.OPEN or not isinstance(packet.data, str):
            raise EngineConnectionError("the handshake did not start with an OPEN packet")
        self._set_handshake(packet.data)
        self.transport = "websocket"
        return []

    def _set_handshake(self, data: str) -> None:
        try:
            self.handshake = OpenPayload.from_json(data)
        except EnginePacketError as exc:
            raise EngineConnectionError(f"malformed OPEN packet: {exc}") from exc

    # ------------------------------------------------------------------ sending

    async def send(self, *messages: str | bytes) -> None:
        """Queue messages for sending, in order, as consecutive packets.

        Waits while the outgoing queue is full. The messages of one call are never split
        by another caller's messages (a Socket.IO packet and its attachments stay together).

        Raises:
            ConnectionClosed: the session is closing or closed.
        """
        while True:
            if not self.open:
                raise ConnectionClosed(1006, f"Engine.IO session closed ({self.close_reason})")
            if len(self._outbox) < self.max_outbox:
                break
            self._outbox_space.clear()
            await self._outbox_space.wait()
        for message in messages:
            self._outbox.append(Packet(PacketType.MESSAGE, message))
        self._outbox_ready.set()

    def _queue(self, packet: Packet) -> None:
        """Queue a control packet (pong) without waiting: it is tiny and must not block."""
        self._outbox.append(packet)
        self._outbox_ready.set()

    async def _writer(self) -> None:
        try:
            while True:
                while not self._outbox or self._paused:
                    self._outbox_ready.clear()
                    await self._outbox_ready.wait()
                async with self._write_lock:
                    if self.transport == "websocket":
                        await self._write_websocket()
                    else:
                        await self._write_polling()
                if len(self._outbox) < self.max_outbox:
                    self._outbox_space.set()
        except (EngineConnectionError, ConnectionClosed) as exc:
            self.log.info("session %s: write failed: %s", self.sid, exc)
            self._lost("transport error")

    async def _write_websocket(self) -> None:
        ws = self._ws
        assert ws is not None
        while self._outbox and not self._paused:
            packet = self._outbox.popleft()
            await ws.send(encode_packet(packet, binary_supported=True))

    async def _write_polling(self) -> None:
        assert self._polling is not None
        await self._polling.send(self.sid or "", self._take_batch())

    def _take_batch(self) -> list[Packet]:
        """Pop the packets of one POST: as many as fit in ``maxPayload`` (at least one)."""
        limit = self.max_payload
        batch: list[Packet] = []
        size = 0
        outbox = self._outbox
        while outbox:
            encoded = len(encode_payload([outbox[0]]).encode("utf-8"))
            extra = encoded + (1 if batch else 0)  # the \x1e separator
            if batch and limit is not None and size + extra > limit:
                break
            if not batch and limit is not None and encoded > limit:
                self.log.warning(
                    "a packet of %d bytes exceeds the server's maxPayload (%d)", encoded, limit
                )
            batch.append(outbox.popleft())
            size += extra
        return batch

    # ------------------------------------------------------------------ receiving

    async def _handle(self, packet: Packet) -> None:
        ptype = packet.type
        if ptype is PacketType.MESSAGE:
            assert packet.data is not None
            await self.on_message(packet.data)
        elif ptype is PacketType.PING:
            self.pings_received += 1
            self._reset_watchdog()
            self._queue(Packet(PacketType.PONG, packet.data))
        elif ptype is PacketType.CLOSE:
            self.log.info("session %s closed by the server", self.sid)
            self._lost("transport close")
        # NOOP, PONG, OPEN, UPGRADE: nothing to do here.

    async def _poll_loop(self, first: list[Packet]) -> None:
        try:
            for packet in first:
                await self._handle(packet)
            assert self._polling is not None and self.handshake is not None
            # A GET waits for data up to pingInterval; the watchdog bounds the rest.
            timeout = (self.handshake.ping_interval + self.handshake.ping_timeout) / 1000 + 5
            while not self._paused and self.open:
                for packet in await self._polling.receive(timeout, self.sid or ""):
                    await self._handle(packet)
                    if not self.open:
                        return
        except (EnginePacketError, EngineConnectionError) as exc:
            self._reader_failed(exc)

    async def _ws_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while self.open:
                message = await ws.recv()
                await self._handle(decode_packet(message))
        except (EnginePacketError, ConnectionClosed) as exc:
            self._reader_failed(exc)

    def _reader_failed(self, exc: Exception) -> None:
        """End the session after the reading loop stopped on ``exc``, with the reason that
        names it: bad bytes, a closed WebSocket or a failed poll."""
        if isinstance(exc, EnginePacketError):
            self.log.info("session %s: parse error: %s", self.sid, exc)
            self._lost("parse error")
            return
        if isinstance(exc, ConnectionClosed):
            what, reason = "WebSocket closed", "transport close"
        else:
            what, reason = "poll failed", "transport error"
        # Once the session is closing, the transport's end is expected: no news.
        if self.open:
            self.log.info("session %s: %s: %s", self.sid, what, exc)
        self._lost(reason)

    # ------------------------------------------------------------------ upgrade

    async def _upgrade(self) -> None:
        ws: WebSocket | None = None
        try:
            async with asyncio.timeout(self.open_timeout):
                ws = self._probe = await self._connect_websocket(sid=self.sid or "")
                await ws.send("2" + PROBE)
                answer = await ws.recv()
            if answer != "3" + PROBE:
                raise EngineConnectionError(f"unexpected probe answer {answer!r}")
        except (TimeoutError, EngineConnectionError, ConnectionClosed) as exc:
            self.upgrade_failed = True
            self.log.info("session %s: upgrade failed, staying on polling: %s", self.sid, exc)
            if ws is not None:
                await _quiet_close(ws)
            return
        if not self.open:
            await _quiet_close(ws)
            return
        # Pause polling: no new GET (the server answers the pending one with a noop) and
        # no new POST; then switch and flush the writes queued meanwhile on the WebSocket.
        self._paused = True
        async with self._write_lock:
            reader = self._reader
            if reader is not None:
                # The server answers the pending GET with a noop; a reader stuck on a slow
                # consumer does not hold the session hostage: then the upgrade is given up.
                await asyncio.wait({reader}, timeout=self.open_timeout)
                if not reader.done():
                    self.upgrade_failed = True
                    self._paused = False
                    self._outbox_ready.set()
                    self.log.info("session %s: polling did not pause, upgrade dropped", self.sid)
                    await _quiet_close(ws)
                    return
            if not self.open:
                await _quiet_close(ws)
                return
            try:
                await ws.send(str(int(PacketType.UPGRADE)))
            except ConnectionClosed:
                # The server closed the probe before the switch (it closes the session
                # during an upgrade, say): the session is still a polling one. Resume
                # polling: the server's close packet, if any, comes with the next GET.
                self.upgrade_failed = True
                await _quiet_close(ws)
                self._paused = False
                if self.open:
                    self._reader = self._spawn(self._poll_loop([]))
                self._outbox_ready.set()
                self.log.info("session %s: probe closed before the switch: polling", self.sid)
                return
            self._ws = ws
            self.transport = "websocket"
            if self._polling is not None:
                self._polling.close()
            self._reader = self._spawn(self._ws_loop())
            self._paused = False
            self._outbox_ready.set()
        self.log.debug("session %s upgraded to websocket", self.sid)

    # ------------------------------------------------------------------ heartbeat

    def _reset_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        handshake = self.handshake
        if handshake is None or self._closed.done():
            return
        delay = (handshake.ping_interval + handshake.ping_timeout) / 1000
        self._watchdog = self._loop.call_later(delay, self._ping_timeout)

    def _ping_timeout(self) -> None:
        self._watchdog = None
        if self.open:
            self.log.info("session %s: no ping from the server: connection lost", self.sid)
            self._lost("ping timeout")

    # ------------------------------------------------------------------ closing

    async def close(self, timeout: float = 2.0) -> None:
        """Close the session deliberately: flush the queued packets (bounded by
        ``timeout``), send the ``CLOSE`` packet, then close the transport."""
        if not self.open:
            await self.wait_closed()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._outbox and self.open:
                    self._outbox_space.clear()
                    await self._outbox_space.wait()
                if self.open:
                    self._closing = True
                    async with self._write_lock:
                        await self._send_close_packet()
        self._finish("io client disconnect")

    async def _send_close_packet(self) -> None:
        close = Packet(PacketType.CLOSE)
        try:
            if self.transport == "websocket" and self._ws is not None:
                await self._ws.send(encode_packet(close, binary_supported=True))
                await self._ws.close()
            elif self._polling is not None:
                await self._polling.send(self.sid or "", [close])
        except (EngineConnectionError, ConnectionClosed) as exc:
            self.log.debug("session %s: close packet not delivered: %s", self.sid, exc)

    async def wait_closed(self) -> str:
        """Wait until the session has ended; return the reason."""
        await asyncio.shield(self._closed)
        return self.close_reason or ""

    def abort(self, reason: str = "transport error") -> None:
        """End the session at once, without the ``CLOSE`` packet (a protocol error above)."""
        self._finish(reason)

    def _lost(self, reason: str) -> None:
        """The session ended without our asking (from any task or callback)."""
        if self._closing and not self._closed.done():
            return  # a deliberate close is under way: its reason wins
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self._closed.done():
            return
        self.close_reason = reason
        self._closing = True
        self._teardown()
        self._closed.set_result(None)
        self.log.debug("session %s closed: %s", self.sid, reason)
        # Wake anyone waiting for room in the outbox: send() will raise.
        self._outbox_space.set()
        if self._opened and self.on_close is not None:
            try:
                self.on_close(reason)
            except Exception:
                self.log.exception("error in the on_close callback")

    def _teardown(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self._polling is not None:
            self._polling.close()
        for ws in (self._ws, self._probe):
            if ws is not None and not ws.closed and ws.transport is not None:
                # No closing handshake on a lost session; a deliberate close already did
                # it. A probe still under way goes with the session.
                ws.transport.abort()
        self._outbox.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.log.error("session %s: internal error", self.sid, exc_info=exc)
            self._lost("transport error")

    def __repr__(self) -> str:
        return f"<EngineClient {self.sid} {self.transport}>"


async def _quiet_close(ws: WebSocket) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 2.0)
