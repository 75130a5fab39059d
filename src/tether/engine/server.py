"""Engine.IO v4 server: sessions over HTTP long-polling and WebSocket, with the upgrade.

The engine plugs into :func:`tether.serve` (one port for both transports)::

    engine = EngineServer(handler)
    server = await tether.serve(engine.handle_websocket, host, port, **engine.serve_options())

``handler`` receives session events (:class:`SessionHandler`). The session and its bounded
queues live in :mod:`.session`, the transports in :mod:`.polling` and :mod:`.websocket`;
any WebSocket satisfying :class:`~tether.engine.transport.Transport` can carry a session.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypedDict

from ..asyncio.limits import KeyedBuckets, Rate, TokenBucket
from ..asyncio.options import Compression
from ..asyncio.server import HTTPHandler, ProcessRequest
from ..exceptions import InvalidOption
from ..metrics import Metrics
from ..protocol.handshake import Request, Response
from . import polling, websocket
from .http import (
    BAD_HANDSHAKE_METHOD,
    BAD_REQUEST,
    FORBIDDEN,
    UNKNOWN_SID,
    UNKNOWN_TRANSPORT,
    UNSUPPORTED_PROTOCOL_VERSION,
    HTTPResponses,
)
from .outbox import Policy, check_policy
from .packets import OpenPayload, encode_packet, encode_payload
from .session import Session, SessionHandler, SessionState
from .transport import Transport

__all__ = ["EngineServer", "ServeOptions", "Session", "SessionHandler", "SessionState"]

logger = logging.getLogger("tether.engine")


class ServeOptions(TypedDict):
    """What :meth:`EngineServer.serve_options` gives :func:`tether.serve`."""

    http_handler: HTTPHandler
    process_request: ProcessRequest
    max_size: int
    max_body_size: int
    ping_interval: float | None
    compression: Compression


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
        cors_origins: allowed Origins (``"*"`` for any, a list, or None for no CORS
            headers). A list is also an allow-list on both transports (see
            ``check_origin``).
        cors_credentials: send ``Access-Control-Allow-Credentials: true`` (not with
            ``"*"``: :class:`~tether.exceptions.InvalidOption`).
        check_origin: with ``cors_origins`` a list, refuse (403) polling requests and
            WebSocket handshakes whose ``Origin`` is neither listed nor the server's own
            (its ``Host``): the defence against cross-site WebSocket hijacking, which CORS
            does not give (browsers do not apply it to WebSocket). Requests without an
            ``Origin`` (non-browser clients) pass. False keeps only the CORS headers.
        max_sessions: the most open sessions; past it a handshake gets 503 with
            ``Retry-After`` (None: no cap).
        session_rate: new sessions per second per client IP, a
            :class:`~tether.asyncio.limits.Rate`, a number or ``(rate, burst)``; past it
            a handshake gets 429 with ``Retry-After`` (None, the default: off, since
            behind a reverse proxy every client has the proxy's IP).
        message_rate: packets per second one session may send (a
            :class:`~tether.asyncio.limits.Rate`, a number or ``(rate, burst)``), on both
            transports; a session past it is closed (``"rate limit"``), its packets
            beyond the burst never reach the handler. None (the default): no limit.
        allow_request: ``async def(request) -> str | None``: a message refuses the
            handshake with 403.
        max_buffered_packets: the most messages waiting for one client (1,024).
        max_buffered_bytes: the most bytes waiting for one client (4 MiB); what the
            transport takes at once (the WebSocket's write buffer) is not counted.
        slow_consumer_policy: what happens to a message for a client whose outbox is
            full, unless the emit or the namespace chose otherwise: ``"disconnect"``
            (the default), ``"wait"``, ``"drop"``, ``"drop_oldest"`` (``"coalesce"``
            needs a key, so it is chosen per emit); see :mod:`tether.engine.outbox`.
        wait_timeout: how long a ``wait`` emitter waits for a full client before that
            client is disconnected (10 s).
        fallback: ``async def(request) -> Response`` for requests outside ``path``.
        metrics: where the engine counts (a new :class:`~tether.metrics.Metrics` by
            default).
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
        check_origin: bool = True,
        max_sessions: int | None = 50_000,
        session_rate: Rate | float | tuple[float, float] | None = None,
        message_rate: Rate | float | tuple[float, float] | None = None,
        allow_request: Callable[[Request], Awaitable[str | None]] | None = None,
        max_buffered_packets: int = 1024,
        max_buffered_bytes: int = 4 * 2**20,
        slow_consumer_policy: Policy = "disconnect",
        wait_timeout: float = 10.0,
        fallback: Callable[[Request], Awaitable[Response]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if check_policy(slow_consumer_policy) == "coalesce":
            raise InvalidOption("coalesce needs a key: choose it per emit")
        for name, value in (
            ("max_buffered_packets", max_buffered_packets),
            ("max_buffered_bytes", max_buffered_bytes),
        ):
            if value < 1:
                raise InvalidOption(f"{name} must be at least 1, not {value!r}")
        self.handler = handler
        self.metrics = metrics if metrics is not None else Metrics()
        self.path = path.rstrip("/") + "/"
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.upgrade_timeout = upgrade_timeout
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        self.http = HTTPResponses(cors_origins, cors_credentials, check_origin)
        self.max_sessions = max_sessions
        rate = Rate.of(session_rate)
        self._session_buckets = KeyedBuckets(rate) if rate is not None else None
        self.message_rate = Rate.of(message_rate)
        self.allow_request = allow_request
        self.max_buffered_packets = max_buffered_packets
        self.max_buffered_bytes = max_buffered_bytes
        self.slow_consumer_policy: Policy = slow_consumer_policy
        self.wait_timeout = wait_timeout
        self.fallback = fallback
        self._sessions: dict[str, Session] = {}
        #: Prepended to every new sid (the hub puts its node id there, so that any node
        #: can tell which one owns a session).
        self.sid_prefix = ""
        #: ``async def(request, sid) -> Response | None``: serve a polling request whose
        #: session is not here (None: it is unknown, 400).
        self.forward: Callable[[Request, str], Awaitable[Response | None]] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.slow_consumer_closes = 0
        # Counted as plain attributes on the hot paths, read by the metrics when sampled.
        self.messages_in = self.messages_out = 0
        self.bytes_in = self.bytes_out = 0
        metrics = self.metrics
        for name, help_text, read in (
            ("tether_messages_in_total", "messages received from clients", "messages_in"),
            (
                "tether_messages_out_total",
                "messages handed to clients' sessions (dropped ones included)",
                "messages_out",
            ),
            ("tether_bytes_in_total", "payload bytes (characters for text) received", "bytes_in"),
            ("tether_bytes_out_total", "payload bytes (characters for text) sent", "bytes_out"),
        ):
            metrics.describe(name, help_text)
            metrics.counter_from(name, functools.partial(self._read_counter, read))
        metrics.describe("tether_sessions_by_transport", "open sessions by transport", "gauge")
        for transport in ("polling", "websocket"):
            metrics.gauge(
                "tether_sessions_by_transport",
                functools.partial(self._count_transport, transport),
                transport=transport,
            )
        metrics.describe("tether_sessions_open", "Engine.IO sessions open", "gauge")
        metrics.gauge("tether_sessions_open", lambda: len(self._sessions))
        metrics.describe("tether_sessions_opened_total", "Engine.IO sessions opened")
        metrics.describe("tether_sessions_refused_total", "Engine.IO handshakes refused, by reason")
        metrics.describe(
            "tether_origin_refused_total", "requests refused for their Origin, by transport"
        )
        metrics.describe(
            "tether_rate_limited_total", "sessions closed past message_rate, by transport"
        )
        metrics.describe(
            "tether_outbox_dropped_total", "messages dropped for slow clients, by policy"
        )
        metrics.describe(
            "tether_outbox_coalesced_total", "queued messages replaced by a newer one of their key"
        )
        metrics.describe(
            "tether_slow_consumer_disconnects_total",
            "clients disconnected for falling behind, by policy",
        )
        metrics.describe(
            "tether_outbox_bytes", "bytes waiting for slow clients, all sessions", "gauge"
        )
        metrics.gauge(
            "tether_outbox_bytes",
            lambda: float(sum(s.outbox.bytes for s in self._sessions.values())),
        )
        metrics.describe(
            "tether_outbox_messages", "messages waiting for slow clients, all sessions", "gauge"
        )
        metrics.gauge(
            "tether_outbox_messages",
            lambda: float(sum(len(s.outbox) for s in self._sessions.values())),
        )
        metrics.describe("tether_outbox_bytes_max", "the fullest session's waiting bytes", "gauge")
        metrics.gauge(
            "tether_outbox_bytes_max",
            lambda: float(max((s.outbox.bytes for s in self._sessions.values()), default=0)),
        )

    def count_out(self, messages: int, size: int) -> None:
        """Count ``messages`` outgoing messages of ``size`` each (a broadcast counts once
        for all its recipients, off the per-recipient path)."""
        self.messages_out += messages
        self.bytes_out += messages * size

    def _read_counter(self, attr: str) -> float:
        return float(getattr(self, attr))

    def _count_transport(self, transport: str) -> float:
        return float(sum(1 for s in self._sessions.values() if s.transport == transport))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def sessions(self) -> dict[str, Session]:
        """Open sessions by sid (a copy)."""
        return dict(self._sessions)

    def serve_options(self) -> ServeOptions:
        """Keyword arguments for :func:`tether.serve` that wire this engine in (typed, so
        ``tether.serve(handler, **options)`` is checked like explicit keywords)."""
        return {
            "http_handler": self.handle_http,
            "process_request": self.process_request,
            "max_size": self.max_payload,
            "max_body_size": self.max_payload + 65536,
            "ping_interval": None,  # Engine.IO has its own heartbeat
            "compression": None,
        }

    # ----------------------------------------------------------------- requests

    def in_path(self, request: Request) -> bool:
        """Whether ``request`` is for this engine (its path)."""
        path = request.path
        return path == self.path or path + "/" == self.path

    def _check(
        self, request: Request, expected: str, query: dict[str, str] | None = None
    ) -> tuple[dict[str, str], Response | None]:
        """Validate the query of a request (parsed here unless given) for the
        ``expected`` transport."""
        if query is None:
            query = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        if query.get("EIO") != "4":
            return query, self.http.error(request, UNSUPPORTED_PROTOCOL_VERSION)
        transport = query.get("transport")
        if transport not in self.transports:
            return query, self.http.error(request, UNKNOWN_TRANSPORT)
        sid = query.get("sid")
        if sid is not None:
            session = self._sessions.get(sid)
            if session is None:
                return query, self.http.error(request, UNKNOWN_SID)
            if transport != session.transport and not (
                transport == "websocket" and session.transport == "polling" and self.allow_upgrades
            ):
                return query, self.http.error(request, BAD_REQUEST)
        if transport != expected:
            return query, self.http.error(request, BAD_REQUEST)
        return query, None

    async def handle_http(self, request: Request) -> Response:
        """Serve an HTTP request (long-polling); other paths go to ``fallback``."""
        if not self.in_path(request):
            if self.fallback is not None:
                return await self.fallback(request)
            return Response.text(404, "not found")
        if not self.http.origin_allowed(request):
            return self._origin_refused(request, "polling")
        if request.method == "OPTIONS":
            headers = self.http.cors(request)
            if headers:
                headers += [
                    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                    (
                        "Access-Control-Allow-Headers",
                        request.headers.get("Access-Control-Request-Headers") or "content-type",
                    ),
                ]
            return Response(204, headers)
        query = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        forward = self.forward
        sid = query.get("sid")
        if forward is not None and sid is not None and sid not in self._sessions:
            # A polling request for a session another node owns (behind a load balancer
            # without sticky sessions): the owner serves it, through the cluster.
            response = await forward(request, sid)
            if response is not None:
                return response
        query, error = self._check(request, "polling", query)
        if error is not None:
            return error
        if sid is None:
            if request.method != "GET":
                return self.http.error(request, BAD_HANDSHAKE_METHOD)
            return await self._handshake(request)
        session = self._sessions[sid]
        if session.ws is not None and not session._upgrading:
            return self.http.error(request, BAD_REQUEST)  # already upgraded
        if session.state is SessionState.CLOSING and request.method != "GET":
            return self.http.error(request, BAD_REQUEST)
        if request.method == "GET":
            return await polling.get(self, session, request)
        if request.method == "POST":
            return polling.post(self, session, request)
        return self.http.error(request, BAD_REQUEST)

    def _origin_refused(self, request: Request, transport: str) -> Response:
        self.metrics.inc("tether_origin_refused_total", transport=transport)
        logger.info(
            "%s request refused: Origin %r not allowed", transport, request.headers.get("Origin")
        )
        return self.http.error(request, FORBIDDEN, 403, "Origin not allowed")

    def _admit(self, request: Request) -> Response | None:
        """None if a new session may open for ``request``, else the refusal (503 past
        ``max_sessions``, 429 past the client IP's ``session_rate``)."""
        if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
            self.metrics.inc("tether_sessions_refused_total", reason="max_sessions")
            logger.info("handshake refused (503): %d sessions open", len(self._sessions))
            response = self.http.error(request, BAD_REQUEST, 503, "Too many sessions")
            response.headers.add("Retry-After", "5")  # type: ignore[union-attr]
            return response
        buckets = self._session_buckets
        if buckets is not None:
            address = request.remote_address
            key = str(address[0]) if isinstance(address, tuple) and address else "?"
            wait = buckets.take(key, asyncio.get_running_loop().time())
            if wait is not None:
                self.metrics.inc("tether_sessions_refused_total", reason="rate")
                logger.info("handshake refused (429): %s opens sessions too fast", key)
                response = self.http.error(request, BAD_REQUEST, 429, "Too many new sessions")
                response.headers.add(  # type: ignore[union-attr]
                    "Retry-After", str(max(1, math.ceil(wait)))
                )
                return response
        return None

    def admit_packets(self, session: Session, count: int, transport: str) -> bool:
        """Spend ``count`` of ``session``'s ``message_rate`` tokens; past it, close the
        session and return False (the packets are not handled)."""
        limit = self.message_rate
        if limit is None:
            return True
        bucket = session._rate_bucket
        if bucket is None:
            bucket = session._rate_bucket = TokenBucket(limit)
            bucket.stamp = asyncio.get_running_loop().time()
        if bucket.take(asyncio.get_running_loop().time(), count):
            return True
        self.metrics.inc("tether_rate_limited_total", transport=transport)
        logger.info("session %s: over %s packets/s, closing", session.sid, limit.rate)
        session.close("rate limit", drain=False)
        return False

    async def _handshake(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        if self.allow_request is not None:
            message = await self.allow_request(request)
            if message is not None:
                return self.http.error(request, FORBIDDEN, 403, message)
        session = self._open_session(request, "polling")
        return self.http.ok(request, encode_payload(session._drain_queue()))

    def _open_session(self, request: Request, transport: str) -> Session:
        sid = self.sid_prefix + secrets.token_urlsafe(15)
        session = Session(self, sid, request, transport)
        session.remote_address = request.remote_address  # the WebSocket path sets its own
        self._sessions[sid] = session
        self.metrics.inc("tether_sessions_opened_total", transport=transport)
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

    # ----------------------------------------------------------------- websocket

    def process_request(self, request: Request) -> Response | None:
        """Validate a WebSocket upgrade before it happens (wire as ``process_request``)."""
        if not self.in_path(request):
            return Response.text(404, "not found")
        if not self.http.origin_allowed(request):
            return self._origin_refused(request, "websocket")
        query, error = self._check(request, "websocket")
        if error is not None:
            return error
        if "sid" not in query:
            return self._admit(request)
        # A second WebSocket for an already upgraded sid is accepted, then closed at once
        # (as the reference server does; see handle_websocket).
        return None

    async def handle_websocket(self, ws: Transport) -> None:
        """Run the WebSocket transport of a session (wire as the ``serve`` handler)."""
        request = ws.request
        assert request is not None
        query = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        sid = query.get("sid")
        if not self.http.origin_allowed(request):
            # Reached when a custom process_request replaced the engine's check.
            self.metrics.inc("tether_origin_refused_total", transport="websocket")
            await ws.close(1008, "Origin not allowed")
            return
        if sid is None:
            if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
                self.metrics.inc("tether_sessions_refused_total", reason="max_sessions")
                await ws.close(1013, "too many sessions")
                return
            if self.allow_request is not None and await self.allow_request(request) is not None:
                await ws.close(1008, "forbidden")
                return
            session = self._open_session(request, "websocket")
            session.remote_address = ws.remote_address
            session._attach(ws)
            for packet in session._drain_queue():
                ws.send_nowait(encode_packet(packet, binary_supported=True), compress=False)
        else:
            session_or_none = self._sessions.get(sid)
            if session_or_none is None or session_or_none.ws is not None:
                await ws.close(1008, "bad upgrade")
                return
            session = session_or_none
            if not await websocket.upgrade(self, session, ws):
                return
        await websocket.read(session, ws)

    async def close(self) -> None:
        """Close every session."""
        for session in list(self._sessions.values()):
            session.close("server shutting down")

    def release(self) -> None:
        """Forget the sessions still lingering for a polling client's last GET (the server
        stopped serving HTTP: that GET cannot come)."""
        for session in list(self._sessions.values()):
            if session.state is SessionState.CLOSING:
                session._finish_close()
