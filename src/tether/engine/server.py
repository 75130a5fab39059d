"""Engine.IO v4 server: sessions over HTTP long-polling and WebSocket, with the upgrade.

The engine plugs into :func:`tether.serve` (one port for both transports)::

    engine = EngineServer(handler)
    server = await tether.serve(engine.handle_websocket, host, port, **engine.serve_options())

``handler`` receives session events (:class:`SessionHandler`). Every per-session queue is
bounded: when the peer cannot keep up and ``max_buffered_packets`` are waiting, the
session is closed ("slow consumer" policy: disconnect; the client reconnects and, with
connection-state recovery, gets what it missed).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ..asyncio.connection import WebSocket
from ..exceptions import ConnectionClosed
from ..protocol.handshake import Request, Response
from .packets import (
    EnginePacketError,
    OpenPayload,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)

__all__ = ["EngineServer", "Session", "SessionHandler", "SessionState"]

logger = logging.getLogger("tether.engine")

_PING = Packet(PacketType.PING)
_NOOP = Packet(PacketType.NOOP)
_CLOSE = Packet(PacketType.CLOSE)

# Engine.IO error codes (engine.io-protocol README, "Errors").
UNKNOWN_TRANSPORT = 0
UNKNOWN_SID = 1
BAD_HANDSHAKE_METHOD = 2
BAD_REQUEST = 3
FORBIDDEN = 4
UNSUPPORTED_PROTOCOL_VERSION = 5
_MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


class SessionState(enum.Enum):
    """The life of a session."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class SessionHandler(Protocol):
    """What the engine tells the layer above."""

    def on_open(self, session: Session) -> None:
        """A new session is open."""

    def on_message(self, session: Session, data: str | bytes) -> None:
        """A MESSAGE packet arrived."""

    def on_close(self, session: Session, reason: str) -> None:
        """The session closed; ``reason`` as in the reference server."""


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
        "_drainer",
        "_ping_timer",
        "_poll",
        "_probed",
        "_queue",
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
        self.state = SessionState.OPEN
        self.ws: WebSocket | None = None
        self.data: Any = None
        self.remote_address: Any = None
        self.closed_reason: str | None = None
        self._queue: collections.deque[Packet] = collections.deque()  # polling outbox
        self._backlog: collections.deque[str | bytes] = collections.deque()  # ws outbox
        self._poll: asyncio.Future[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._upgrading = False
        self._close_pending = False
        self._probed = False

    # ----------------------------------------------------------------- sending

    def send(self, data: str | bytes) -> None:
        """Queue a MESSAGE packet; never waits. A no-op once the session is closing."""
        if self.state is not SessionState.OPEN:
            return
        ws = self.ws
        if ws is not None and not self._upgrading:
            if self._backlog or not ws.writable:
                self._push_backlog(data if isinstance(data, bytes) else "4" + data)
                return
            try:
                ws.send_nowait(data if isinstance(data, bytes) else "4" + data, compress=False)
            except ConnectionClosed:
                self.close("transport close")
            return
        self._enqueue(Packet(PacketType.MESSAGE, data))

    def send_frame(self, frame: str | bytes) -> None:
        """Queue an already encoded WebSocket frame payload (``4...`` or raw bytes)."""
        ws = self.ws
        if ws is None or self._upgrading:
            if isinstance(frame, bytes):
                self._enqueue(Packet(PacketType.MESSAGE, frame))
            else:
                self._enqueue(decode_packet(frame))
            return
        if self.state is not SessionState.OPEN:
            return
        if self._backlog or not ws.writable:
            self._push_backlog(frame)
            return
        try:
            ws.send_nowait(frame, compress=False)
        except ConnectionClosed:
            self.close("transport close")

    def can_write_directly(self) -> bool:
        """Whether a pre-encoded frame may be written now (WebSocket, nothing waiting)."""
        ws = self.ws
        return (
            isinstance(ws, WebSocket)  # not the ASGI adapter's WebSocket
            and self.state is SessionState.OPEN
            and not self._upgrading
            and not self._backlog
            and ws.writable
        )

    def write_wire(self, wire: bytes) -> None:
        """Write the bytes of an already encoded WebSocket frame (see
        :meth:`can_write_directly`); broadcasts share one encoding between sessions."""
        ws = self.ws
        assert ws is not None
        try:
            ws.write_frame(wire)
        except ConnectionClosed:
            self.close("transport close")

    def _push_backlog(self, frame: str | bytes) -> None:
        if len(self._backlog) >= self.engine.max_buffered_packets:
            self.engine.slow_consumer_closes += 1
            logger.warning("session %s: send buffer full, closing (slow consumer)", self.sid)
            self.close("transport error", drain=False)
            return
        self._backlog.append(frame)
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain_backlog())

    async def _drain_backlog(self) -> None:
        ws = self.ws
        try:
            while self._backlog and ws is not None and self.state is SessionState.OPEN:
                await ws.drain()
                while self._backlog and ws.writable:
                    ws.send_nowait(self._backlog.popleft(), compress=False)
        except ConnectionClosed:
            pass
        finally:
            self._drainer = None

    def _enqueue(self, packet: Packet) -> None:
        if len(self._queue) >= self.engine.max_buffered_packets:
            self.engine.slow_consumer_closes += 1
            logger.warning("session %s: poll buffer full, closing (slow consumer)", self.sid)
            self.close("transport error", drain=False)
            return
        self._queue.append(packet)
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(None)

    def _drain_queue(self) -> list[Packet]:
        packets = list(self._queue)
        self._queue.clear()
        if self.state is SessionState.CLOSING:
            if self._close_pending:
                self._close_pending = False
                self._queue.append(_CLOSE)
            else:
                self._finish_close()
        return packets

    def _finish_close(self) -> None:
        self.state = SessionState.CLOSED
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
        if self.state is not SessionState.OPEN:
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
        if ptype is PacketType.MESSAGE:
            assert packet.data is not None
            self.engine.handler.on_message(self, packet.data)
        elif ptype is PacketType.PONG:
            self._on_pong()
        elif ptype is PacketType.CLOSE:
            self.close("transport close", send_close=False)
        elif ptype is PacketType.PING:
            self._send_control(Packet(PacketType.PONG, packet.data))
        elif ptype is PacketType.NOOP:
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
        if self.state is not SessionState.OPEN:
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
                    while self._backlog:  # bounded by max_buffered_packets
                        ws.send_nowait(self._backlog.popleft(), compress=False)
                except ConnectionClosed:
                    pass
            self.engine._spawn(ws.close(1000))
        self._backlog.clear()
        poll = self._poll
        poll_waiting = poll is not None and not poll.done()
        if drain and send_close and ws is None and (self._queue or not poll_waiting):
            # Deliver the queue with one GET and the close packet with the next, as the
            # reference server does: clients handle a close packet before the packets
            # that precede it in the same payload.
            self.state = SessionState.CLOSING
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
        if poll is not None and not poll.done():
            poll.set_result(None)
        try:
            self.engine.handler.on_close(self, reason)
        except Exception:
            logger.exception("error in on_close handler")


class EngineServer:
    """The Engine.IO v4 server.

    Args:
        handler: receives session events.
        path: the URL path (``/engine.io/``, ``/socket.io/``...).
        ping_interval: seconds between server pings.
        ping_timeout: seconds to wait for a pong before closing.
        max_payload: the largest HTTP body / WebSocket message accepted, in bytes.
        upgrade_timeout: seconds an upgrade may take.
        transports: allowed transports.
        allow_upgrades: whether polling may upgrade to WebSocket.
        cors_origins: allowed Origins for polling (``"*"`` for any, a list, or None for
            no CORS headers).
        cors_credentials: send ``Access-Control-Allow-Credentials: true``.
        allow_request: ``async def(request) -> str | None``: a message refuses the
            handshake with 403.
        max_buffered_packets: the per-session outgoing queue bound.
        fallback: ``async def(request) -> Response`` for requests outside ``path``.
    """

    def __init__(
        self,
        handler: SessionHandler,
        *,
        path: str = "/engine.io/",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
        upgrade_timeout: float = 10.0,
        transports: Sequence[str] = ("polling", "websocket"),
        allow_upgrades: bool = True,
        cors_origins: str | Sequence[str] | None = None,
        cors_credentials: bool = False,
        allow_request: Callable[[Request], Awaitable[str | None]] | None = None,
        max_buffered_packets: int = 1024,
        fallback: Callable[[Request], Awaitable[Response]] | None = None,
    ) -> None:
        self.handler = handler
        self.path = path.rstrip("/") + "/"
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.upgrade_timeout = upgrade_timeout
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        self.cors_origins = cors_origins
        self.cors_credentials = cors_credentials
        self.allow_request = allow_request
        self.max_buffered_packets = max_buffered_packets
        self.fallback = fallback
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self.slow_consumer_closes = 0

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def sessions(self) -> dict[str, Session]:
        """Open sessions by sid (a copy)."""
        return dict(self._sessions)

    def serve_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`tether.serve` that wire this engine in."""
        return {
            "http_handler": self.handle_http,
            "process_request": self.process_request,
            "max_size": self.max_payload,
            "max_body_size": self.max_payload + 65536,
            "ping_interval": None,  # Engine.IO has its own heartbeat
            "compression": None,
        }

    # ----------------------------------------------------------------- HTTP helpers

    def _in_path(self, request: Request) -> bool:
        path = request.path
        return path == self.path or path + "/" == self.path

    def _cors(self, request: Request) -> list[tuple[str, str]]:
        origin = request.headers.get("Origin")
        allowed = self.cors_origins
        if allowed is None or origin is None:
            return []
        if allowed != "*" and origin not in allowed:
            return []
        headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if self.cors_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def _error(self, request: Request, code: int, status: int = 400) -> Response:
        body = json.dumps({"code": code, "message": _MESSAGES[code]}, separators=(",", ":"))
        return Response(
            status,
            [("Content-Type", "application/json"), *self._cors(request)],
            body.encode(),
        )

    def _check(self, request: Request) -> tuple[dict[str, str], Response | None]:
        query = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        if query.get("EIO") != "4":
            return query, self._error(request, UNSUPPORTED_PROTOCOL_VERSION)
        transport = query.get("transport")
        if transport not in self.transports:
            return query, self._error(request, UNKNOWN_TRANSPORT)
        sid = query.get("sid")
        if sid is not None:
            session = self._sessions.get(sid)
            if session is None:
                return query, self._error(request, UNKNOWN_SID)
            if transport != session.transport and not (
                transport == "websocket" and session.transport == "polling" and self.allow_upgrades
            ):
                return query, self._error(request, BAD_REQUEST)
        return query, None

    # ----------------------------------------------------------------- polling

    async def handle_http(self, request: Request) -> Response:
        """Serve an HTTP request (long-polling); other paths go to ``fallback``."""
        if not self._in_path(request):
            if self.fallback is not None:
                return await self.fallback(request)
            return Response.text(404, "not found")
        if request.method == "OPTIONS":
            headers = self._cors(request)
            if headers:
                headers += [
                    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                    (
                        "Access-Control-Allow-Headers",
                        request.headers.get("Access-Control-Request-Headers") or "content-type",
                    ),
                ]
            return Response(204, headers)
        query, error = self._check(request)
        if error is not None:
            return error
        if query.get("transport") != "polling":
            return self._error(request, BAD_REQUEST)
        sid = query.get("sid")
        if sid is None:
            if request.method != "GET":
                return self._error(request, BAD_HANDSHAKE_METHOD)
            return await self._handshake(request, "polling")
        session = self._sessions[sid]
        if session.ws is not None and not session._upgrading:
            return self._error(request, BAD_REQUEST)  # already upgraded
        if session.state is SessionState.CLOSING and request.method != "GET":
            return self._error(request, BAD_REQUEST)
        if request.method == "GET":
            return await self._poll(session, request)
        if request.method == "POST":
            return self._post(session, request)
        return self._error(request, BAD_REQUEST)

    async def _handshake(self, request: Request, transport: str) -> Response:
        if self.allow_request is not None:
            message = await self.allow_request(request)
            if message is not None:
                body = json.dumps({"code": FORBIDDEN, "message": message}, separators=(",", ":"))
                return Response(
                    403, [("Content-Type", "application/json"), *self._cors(request)], body.encode()
                )
        session = self._open_session(request, transport)
        payload = encode_payload(list(session._drain_queue()))
        return self._ok(request, payload)

    def _open_session(self, request: Request, transport: str) -> Session:
        sid = secrets.token_urlsafe(15)
        session = Session(self, sid, request, transport)
        self._sessions[sid] = session
        upgrades = (
            ["websocket"]
            if transport == "polling" and self.allow_upgrades and "websocket" in self.transports
            else []
        )
        open_packet = OpenPayload(
            sid=sid,
            upgrades=tuple(upgrades),
            ping_interval=int(self.ping_interval * 1000),
            ping_timeout=int(self.ping_timeout * 1000),
            max_payload=self.max_payload,
        ).to_packet()
        session._queue.append(open_packet)
        session._schedule_ping()
        try:
            self.handler.on_open(session)
        except Exception:
            logger.exception("error in on_open handler")
            session.close("server error")
        return session

    def _ok(
        self, request: Request, payload: str, content_type: str = "text/plain; charset=UTF-8"
    ) -> Response:
        return Response(
            200, [("Content-Type", content_type), *self._cors(request)], payload.encode()
        )

    async def _poll(self, session: Session, request: Request) -> Response:
        if session._poll is not None and not session._poll.done():
            # Two concurrent GETs: the reference server fails the session.
            session.close("transport error", drain=False)
            return self._error(request, BAD_REQUEST)
        if not session._queue and session.state is SessionState.OPEN and not session._probed:
            fut = session._poll = asyncio.get_running_loop().create_future()
            try:
                await fut
            finally:
                session._poll = None
        if not session._queue:
            return self._ok(request, encode_payload([_NOOP]))
        return self._ok(request, encode_payload(list(session._drain_queue())))

    def _post(self, session: Session, request: Request) -> Response:
        body = request.body
        if len(body) > self.max_payload:
            session.close("transport error", drain=False)
            return Response(413, self._cors(request), b"Payload Too Large")
        try:
            packets = decode_payload(body)
        except EnginePacketError:
            session.close("parse error", drain=False)
            return self._error(request, BAD_REQUEST)
        for packet in packets:
            if session.state is not SessionState.OPEN:
                break
            session._on_packet(packet)
        return self._ok(request, "ok", "text/html")

    # ----------------------------------------------------------------- websocket

    def process_request(self, request: Request) -> Response | None:
        """Validate a WebSocket upgrade before it happens (wire as ``process_request``)."""
        if not self._in_path(request):
            return Response.text(404, "not found")
        query, error = self._check(request)
        if error is not None:
            return error
        if query.get("transport") != "websocket":
            return self._error(request, BAD_REQUEST)
        # A second WebSocket for an already upgraded sid is accepted, then closed at once
        # (as the reference server does; see handle_websocket).
        return None

    async def handle_websocket(self, ws: WebSocket) -> None:
        """Run the WebSocket transport of a session (wire as the ``serve`` handler)."""
        request = ws.request
        assert request is not None
        query = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        sid = query.get("sid")
        if sid is None:
            if self.allow_request is not None and await self.allow_request(request) is not None:
                await ws.close(1008, "forbidden")
                return
            session = self._open_session(request, "websocket")
            session.remote_address = ws.remote_address
            session.ws = ws
            for packet in session._drain_queue():
                ws.send_nowait(encode_packet(packet, binary_supported=True), compress=False)
        else:
            session_or_none = self._sessions.get(sid)
            if session_or_none is None or session_or_none.ws is not None:
                await ws.close(1008, "bad upgrade")
                return
            session = session_or_none
            if not await self._upgrade(session, ws):
                return
        await self._read_websocket(session, ws)

    async def _upgrade(self, session: Session, ws: WebSocket) -> bool:
        session.ws = ws
        session._upgrading = True
        try:
            async with asyncio.timeout(self.upgrade_timeout):
                while True:
                    packet = decode_packet(await ws.recv())
                    if packet.type is PacketType.PING and packet.data == "probe":
                        await ws.send("3probe", compress=False)  # now, before the noop
                        # Release the pending GET so the client can pause polling; any GET
                        # until the upgrade completes is answered at once (see _poll).
                        session._probed = True
                        session._enqueue(_NOOP)
                    elif packet.type is PacketType.UPGRADE:
                        break
                    elif packet.type is PacketType.NOOP:
                        continue
                    else:
                        raise EnginePacketError("unexpected packet during upgrade")
        except (TimeoutError, EnginePacketError, ConnectionClosed) as exc:
            logger.info("session %s: upgrade failed: %r", session.sid, exc)
            session.ws = None
            session._upgrading = False
            session._probed = False
            await ws.close(1002 if isinstance(exc, EnginePacketError) else 1000)
            return False
        if session.state is not SessionState.OPEN:
            await ws.close(1000)
            return False
        session.transport = "websocket"
        session._upgrading = False
        # Whatever waited for the next GET now goes over the WebSocket.
        pending = list(session._drain_queue())
        poll = session._poll
        if poll is not None and not poll.done():
            session._queue.append(_NOOP)
            poll.set_result(None)
        for packet in pending:
            if packet.type is not PacketType.NOOP:
                session.send_frame(encode_packet(packet, binary_supported=True))
        return True

    async def _read_websocket(self, session: Session, ws: WebSocket) -> None:
        if isinstance(ws, WebSocket):
            # Direct delivery: each message is handled inside data_received, with no
            # queue and no task switch; reading pauses while the outgoing buffer is full.
            def on_message(message: str | bytes) -> None:
                if session.state is not SessionState.OPEN:
                    return
                try:
                    packet = decode_packet(message)
                except EnginePacketError:
                    session.close("parse error", drain=False)
                    return
                session._on_packet(packet)

            try:
                ws.on_message = on_message
                await ws.wait_closed()
            finally:
                if session.ws is ws:
                    session.close("transport close", send_close=False)
            return
        try:
            async for message in ws:
                try:
                    packet = decode_packet(message)
                except EnginePacketError:
                    session.close("parse error", drain=False)
                    break
                session._on_packet(packet)
                if session.state is not SessionState.OPEN:
                    break
        except ConnectionClosed:
            pass
        finally:
            if session.ws is ws:
                session.close("transport close", send_close=False)

    async def close(self) -> None:
        """Close every session."""
        for session in list(self._sessions.values()):
            session.close("server shutting down")
