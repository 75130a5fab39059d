"""The asyncio WebSocket server: HTTP/1.1 handshake on ``asyncio.Protocol``, then WebSocket.

One port serves WebSocket upgrades and, with ``http_handler``, plain HTTP requests
(keep-alive, one request at a time per connection), which the engine layer uses for
HTTP long-polling.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..exceptions import ConnectionClosed, InvalidOption, InvalidRequest
from ..metrics import Metrics
from ..protocol.connection import DEFAULT_MAX_SIZE, Side
from ..protocol.frames import Opcode, serialize_close, serialize_frame
from ..protocol.handshake import (
    Headers,
    Request,
    Response,
    is_upgrade_request,
    server_accept,
)
from .connection import WebSocket
from .http import HTTPError, RequestParser
from .limits import KeyedBuckets, Rate
from .linger import linger_close
from .opening import Opening
from .options import Compression, ConnectionOptions, deflate_options

__all__ = ["HTTPHandler", "Handler", "ProcessRequest", "Server", "serve"]

logger = logging.getLogger("tether.server")

Handler = Callable[[WebSocket], Awaitable[None]]
ProcessRequest = Callable[[Request], "Response | Awaitable[Response | None] | None"]
HTTPHandler = Callable[[Request], Awaitable[Response]]

#: The default cap on open connections (HTTP and WebSocket, counted from accept).
DEFAULT_MAX_CONNECTIONS = 10_000
#: Refused connections held at once while they are told why; past this they are dropped.
MAX_REFUSING = 1024
#: How long a refused connection may take to send its request before it is dropped.
REFUSAL_TIMEOUT = 5.0
#: Pipelined requests waiting per connection; past them reading pauses.
MAX_PIPELINE = 8
#: Request bytes parsed at a time (one step cannot complete many more requests than this).
PARSE_STEP = 4096


class _Refusal:
    """Why a new connection is refused: an HTTP status (with ``Retry-After``) for plain
    requests, close code 1013 (try again later) for WebSocket upgrades."""

    __slots__ = ("reason", "retry_after", "status", "text")

    def __init__(self, status: int, reason: str, text: str, retry_after: float) -> None:
        self.status = status
        self.reason = reason
        self.text = text
        self.retry_after = retry_after

    def response(self) -> Response:
        after = str(max(1, round(self.retry_after)))
        return Response.text(self.status, self.text, [("Retry-After", after)])


class _Slot:
    """One admitted connection: counted from accept until its TCP connection ends,
    whether it stays HTTP or becomes a WebSocket (released exactly once)."""

    __slots__ = ("address", "server")

    def __init__(self, server: Server, address: str | None) -> None:
        self.server: Server | None = server
        self.address = address
        server._count += 1
        if address is not None and server._max_per_ip is not None:
            server._per_ip[address] = server._per_ip.get(address, 0) + 1

    def release(self, ws: WebSocket | None = None) -> None:
        server = self.server
        if server is None:
            return
        self.server = None
        if ws is not None:
            server._open.discard(ws)
        server._count -= 1
        address = self.address
        if address is not None and server._max_per_ip is not None:
            left = server._per_ip.get(address, 1) - 1
            if left > 0:
                server._per_ip[address] = left
            else:
                server._per_ip.pop(address, None)


class _HTTPProtocol(asyncio.Protocol):
    """One TCP connection until it upgrades (or for its whole life, for plain HTTP)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser(
            max_header_size=server.max_header_size, max_body_size=server.max_body_size
        )
        self.pending: list[Request] = []
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None
        self.leftover = b""
        self.upgrading = False
        self.slot: _Slot | None = None
        self.peer: Any = None
        self.refusal: _Refusal | None = None
        self.write_paused = False
        self.reading = True
        self.unparsed = b""
        self.unparsed_at = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        peer = transport.get_extra_info("peername")
        address = None
        if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
            # One string per peer address, shared by its connections (the per-IP count,
            # request.remote_address); the transport makes a new one on every call.
            address = sys.intern(peer[0])
            peer = (address, *peer[1:])
        self.peer = peer
        refusal = server._admit(address)
        if refusal is not None:
            server.metrics.inc("tether_connections_refused_total", reason=refusal.reason)
            if len(server._refusing) >= MAX_REFUSING:
                # Under a flood, telling every refused peer why would itself cost memory.
                self.transport.abort()  # type: ignore[union-attr]
                self.transport = None
                return
            logger.info("connection from %s refused: %s", address, refusal.text)
            self.refusal = refusal
            server._refusing.add(self)
            self.timer = asyncio.get_running_loop().call_later(REFUSAL_TIMEOUT, self._drop)
            return
        self.slot = _Slot(server, address)
        server._http.add(self)
        self._arm_timer()

    def _drop(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.abort()
        self._forget()
        self.transport = None

    def _refuse(self, request: Request) -> None:
        """Tell a refused connection why: an HTTP status, or for a WebSocket upgrade a 101
        followed at once by close 1013 (browsers see a close code, never a status)."""
        refusal = self.refusal
        transport = self.transport
        assert refusal is not None and transport is not None
        if not is_upgrade_request(request):
            self._respond(refusal.response(), close=True)
            return
        try:
            accepted = server_accept(request, subprotocols=self.server.subprotocols)
        except InvalidRequest as exc:
            self._respond(Response.text(exc.status, str(exc), exc.headers), close=True)
            return
        close = serialize_close(1013, refusal.text[:100])
        transport.write(accepted.response.serialize() + serialize_frame(Opcode.CLOSE, close))
        linger_close(transport)
        self._forget()
        self.transport = None

    def _arm_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        timeout = self.server.options.open_timeout
        if timeout is not None:
            self.timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport is not None and not self.busy:
            logger.info("no complete request in %ss: closing", self.server.options.open_timeout)
            self._respond(Response.text(408, "request timeout"), close=True)

    def data_received(self, data: bytes) -> None:
        if self.upgrading:
            self.leftover += data
            return
        if self.unparsed_at < len(self.unparsed):
            self.unparsed = self.unparsed[self.unparsed_at :] + data
        else:
            self.unparsed = data
        self.unparsed_at = 0
        self._parse()

    def _parse(self) -> None:
        """Parse what was read, a step at a time, while there is room for requests.

        A client may pipeline requests but not outrun the answers: past ``MAX_PIPELINE``
        requests waiting, or while the answers are not being read (``pause_writing``),
        the rest stays unparsed and reading stops, so what one connection holds is
        bounded by one read and ``MAX_PIPELINE`` requests.
        """
        data = self.unparsed
        while self.unparsed_at < len(data):
            transport = self.transport
            if transport is None or self.upgrading:
                return
            if len(self.pending) >= MAX_PIPELINE or self.write_paused:
                self._reading(False)
                return
            at = self.unparsed_at
            chunk = data[at : at + PARSE_STEP] if at or len(data) > PARSE_STEP else data
            self.unparsed_at = at + len(chunk)
            try:
                requests = self.parser.feed(chunk)
            except HTTPError as exc:
                logger.info("bad HTTP request: %s", exc)
                self._respond(Response.text(exc.status, str(exc)), close=True)
                return
            if self.refusal is not None:
                if requests:
                    self._refuse(requests[0])
                continue
            offset = self.parser.upgrade_offset
            if offset is not None:
                self.leftover = chunk[offset:] + data[self.unparsed_at :]
                self.unparsed_at = len(data)
                self.upgrading = True
                self._reading(False)
            if requests:
                for request in requests:
                    request.remote_address = self.peer
                self.pending.extend(requests)
                self._next()
        self.unparsed = b""
        self.unparsed_at = 0
        if not self.upgrading and not self.write_paused:
            self._reading(True)

    def _reading(self, on: bool) -> None:
        transport = self.transport
        if transport is None or on == self.reading or transport.is_closing():
            return
        self.reading = on
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def pause_writing(self) -> None:
        # A client that sends requests but does not read the answers: stop reading (and
        # answering) until it catches up, so its responses cannot pile up in memory.
        self.write_paused = True
        if not self.upgrading:
            self._reading(False)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self._next()
            self._parse()

    def _next(self) -> None:
        if self.busy or self.write_paused or not self.pending or self.transport is None:
            return
        self.busy = True
        request = self.pending.pop(0)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        check = self.server.process_request
        if is_upgrade_request(request) and (
            check is None or not inspect.iscoroutinefunction(check)
        ):
            # Fast path: an upgrade with no async hook completes right here, with no task.
            try:
                result = check(request) if check is not None else None
            except Exception:
                logger.exception("error in process_request")
                result = Response.text(500, "internal server error")
            if not inspect.isawaitable(result):
                self.busy = False
                self._accept(request, result)
                return
            task = asyncio.ensure_future(self._finish_upgrade(request, result))
        else:
            task = asyncio.ensure_future(self._handle(request))
        self.server._track(task)

    async def _handle(self, request: Request) -> None:
        server = self.server
        try:
            if is_upgrade_request(request):
                await self._upgrade(request)
                return
            if server.http_handler is None:
                response = Response.text(
                    426, "this is a WebSocket endpoint", [("Upgrade", "websocket")]
                )
            else:
                try:
                    response = await server.http_handler(request)
                    if not isinstance(response, Response):
                        raise TypeError(f"http_handler returned {response!r}, not a Response")
                except Exception:
                    logger.exception("error in http_handler")
                    response = Response.text(500, "internal server error")
            keep = request.keep_alive and not self.upgrading and not server._closing
            self._respond(response, close=not keep)
        finally:
            self.busy = False
        if self.transport is not None and not self.transport.is_closing():
            self._arm_timer()
            self._next()
            self._parse()

    def _respond(self, response: Response, *, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if close and response.headers is not None:
            response.headers.add("Connection", "close")  # type: ignore[union-attr]
        transport.write(response.serialize())
        if close:
            # Unread request bytes would turn a plain close into a reset that loses
            # this very response: half-close and discard what still comes.
            linger_close(transport)
            self._forget()
            self.transport = None

    def _forget(self) -> None:
        self.server._http.discard(self)
        self.server._refusing.discard(self)
        if self.slot is not None:
            self.slot.release()
            self.slot = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def _finish_upgrade(self, request: Request, pending: Awaitable[Response | None]) -> None:
        try:
            try:
                result = await pending
            except Exception:
                logger.exception("error in process_request")
                result = Response.text(500, "internal server error")
        finally:
            self.busy = False
        self._accept(request, result)

    async def _upgrade(self, request: Request) -> None:
        result: Response | None = None
        if self.server.process_request is not None:
            try:
                outcome = self.server.process_request(request)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                result = outcome
            except Exception:
                logger.exception("error in process_request")
                result = Response.text(500, "internal server error")
        self._accept(request, result)

    def _accept(self, request: Request, result: Response | None) -> None:
        """Answer an upgrade request: the hook's response, an error, or 101 and the handler."""
        server = self.server
        transport = self.transport
        if transport is None:
            return
        if result is not None:
            if not isinstance(result, Response):
                logger.error("process_request returned %r, not a Response or None", result)
                result = Response.text(500, "internal server error")
            self._respond(result, close=True)
            return
        try:
            accepted = server_accept(
                request,
                subprotocols=server.subprotocols,
                deflate=server.options.deflate,
                origins=server.origins,
            )
        except InvalidRequest as exc:
            logger.info("handshake rejected (%s): %s", exc.status, exc)
            self._respond(Response.text(exc.status, str(exc), exc.headers), close=True)
            return
        if transport.is_closing() or server._closing:
            self._respond(Response.text(503, "server shutting down"), close=True)
            return
        if server.process_response is not None:
            server.process_response(request, accepted.response)
        slot, self.slot = self.slot, None  # the WebSocket keeps the connection's place
        self._forget()
        transport.write(accepted.response.serialize())
        ws = server.options.websocket(
            accepted.deflate,
            request=request,
            response=accepted.response,
            subprotocol=accepted.subprotocol,
        )
        server._open.add(ws)
        # Released, and the WebSocket forgotten, when it closes. (A connection with no
        # place left, which the checks above should not let through, takes one here.)
        ws._owner = slot if slot is not None else _Slot(server, None)
        ws.attach(transport, self.leftover)
        self.transport = None
        if not transport.is_closing():
            transport.resume_reading()
        if logger.isEnabledFor(logging.DEBUG):
            # The path only: a query may carry a token, and tokens never reach the logs.
            ws.log.debug("open %s %s", request.target.partition("?")[0], ws.remote_address)
        request.headers.compact()
        if isinstance(accepted.response.headers, Headers):
            accepted.response.headers.compact()
        ws.start_callbacks()
        # The handler runs in a task of its own, so this HTTP protocol (parser, buffers)
        # is freed now rather than kept for the connection's lifetime. The task leaves
        # the server's set itself when it ends (no done-callback per connection).
        server._tasks.add(asyncio.ensure_future(server._run_handler(ws)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self.transport = None


class Server:
    """A running WebSocket server. Use :func:`serve` to create one (it documents the
    arguments).

    Attributes:
        connections: the open WebSocket connections.
        options: what every connection is made with.
        metrics: what this server counts (:class:`~tether.metrics.Metrics`).
    """

    def __init__(
        self,
        handler: Handler,
        options: ConnectionOptions | None = None,
        *,
        process_request: ProcessRequest | None = None,
        process_response: Callable[[Request, Response], None] | None = None,
        http_handler: HTTPHandler | None = None,
        subprotocols: Sequence[str] | None = None,
        origins: Sequence[str | None] | None = None,
        max_header_size: int = 16384,
        max_body_size: int = 2**20,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: int | None = None,
        connection_rate: Rate | float | tuple[float, float] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        for name, value in (
            ("max_connections", max_connections),
            ("max_connections_per_ip", max_connections_per_ip),
        ):
            if value is not None and value < 1:
                raise InvalidOption(f"{name} must be at least 1 or None, not {value!r}")
        self.handler = handler
        self.metrics = metrics if metrics is not None else Metrics()
        self.options = options or ConnectionOptions(
            Side.SERVER, deflate_options("deflate", Side.SERVER)
        )
        self.process_request = process_request
        self.process_response = process_response
        self.http_handler = http_handler
        self.subprotocols = subprotocols
        self.origins = origins
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self._max_connections = max_connections
        self._max_per_ip = max_connections_per_ip
        rate = Rate.of(connection_rate)
        self._rates = KeyedBuckets(rate) if rate is not None else None
        self._count = 0
        self._per_ip: dict[str, int] = {}
        self._open: set[WebSocket] = set()
        self._http: set[_HTTPProtocol] = set()
        self._refusing: set[_HTTPProtocol] = set()
        metrics = self.metrics
        metrics.describe("tether_connections_open", "TCP connections admitted and open", "gauge")
        metrics.gauge("tether_connections_open", lambda: float(self._count))
        metrics.describe(
            "tether_connections_refused_total", "TCP connections refused at accept, by reason"
        )
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._servers: list[asyncio.AbstractServer] = []
        self._closed_event = asyncio.Event()

    def _admit(self, address: str | None) -> _Refusal | None:
        """Check a new TCP connection against the limits: None admits it."""
        if self._closing:
            return _Refusal(503, "shutting_down", "server shutting down", 5)
        limit = self._max_connections
        if limit is not None and self._count >= limit:
            return _Refusal(503, "max_connections", "too many connections", 5)
        if address is not None:
            per_ip = self._max_per_ip
            if per_ip is not None and self._per_ip.get(address, 0) >= per_ip:
                return _Refusal(429, "max_connections_per_ip", "too many connections", 5)
            if self._rates is not None:
                wait = self._rates.take(address, asyncio.get_running_loop().time())
                if wait is not None:
                    return _Refusal(429, "connection_rate", "connection rate exceeded", wait)
        return None

    @property
    def open_count(self) -> int:
        """TCP connections admitted and still open (HTTP and WebSocket)."""
        return self._count

    @property
    def connections(self) -> set[WebSocket]:
        """The open WebSocket connections (a copy)."""
        return set(self._open)

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return [s for srv in self._servers for s in getattr(srv, "sockets", ())]

    @property
    def port(self) -> int:
        """The port of the first listening socket."""
        return int(self.sockets[0].getsockname()[1])

    def _track(self, task: asyncio.Future[Any]) -> None:
        """Keep a reference to ``task`` until it is done, and log it if it fails."""
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("server task failed", exc_info=task.exception())

    async def _run_handler(self, ws: WebSocket) -> None:
        try:
            try:
                await self.handler(ws)
            except ConnectionClosed:
                pass
            except asyncio.CancelledError:
                await ws.close(1001, "server shutting down")
                raise
            except Exception:
                ws.log.exception("error in connection handler")
                await ws.close(1011, "internal error")
                return
            await ws.close(1000 if not self._closing else 1001)
        except Exception:
            logger.exception("server task failed")  # (as _track logs its tasks' failures)
        finally:
            self._tasks.discard(asyncio.current_task())

    async def start(
        self,
        host: str | Sequence[str] | None,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
        backlog: int = 1024,
        reuse_port: bool | None = None,
    ) -> None:
        """Start listening (called by :func:`serve`)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            srv = await loop.create_server(
                lambda: _HTTPProtocol(self), sock=sock, ssl=ssl, backlog=backlog
            )
        else:
            srv = await loop.create_server(
                lambda: _HTTPProtocol(self),
                host,
                port,
                ssl=ssl,
                backlog=backlog,
                reuse_port=reuse_port,
            )
        self._servers.append(srv)

    def close(self, *, close_connections: bool = True) -> None:
        """Stop accepting connections; close open ones with 1001 (in the background)."""
        if self._closing:
            return
        self._closing = True
        for srv in self._servers:
            srv.close()
        self._track(asyncio.ensure_future(self._shutdown(close_connections)))

    async def _shutdown(self, close_connections: bool) -> None:
        for proto in list(self._refusing):
            proto._drop()
        for proto in list(self._http):
            if proto.transport is not None and not proto.busy:
                proto.transport.close()
        if close_connections:
            # Graceful: a 1001 to everyone, then wait for the closing handshakes (bounded).
            await asyncio.gather(
                *(ws.close(1001, "server shutting down") for ws in list(self._open)),
                return_exceptions=True,
            )
        handlers = [t for t in self._tasks if t is not asyncio.current_task()]
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=self.options.close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for srv in self._servers:
            await srv.wait_closed()
        self._closed_event.set()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection handler has returned."""
        await self._closed_event.wait()

    async def serve_forever(self) -> None:
        """Run until cancelled, then close gracefully."""
        try:
            await asyncio.Future()
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


class serve(Opening[Server]):
    """Start a WebSocket server: ``server = await serve(handler, host, port)``.

    Also ``async with serve(...) as server:``, which closes it gracefully on exit.

    Args:
        handler: ``async def handler(ws)``, run for every connection; the connection is
            closed (1000) when it returns, or with 1011 when it raises.
        host: the interface(s) to listen on.
        port: the TCP port (0 picks a free one; see ``server.port``).
        ssl: an SSLContext to serve ``wss://``.
        process_request: called with the :class:`Request` before the upgrade; may return
            a :class:`Response` (401, 403, ...) to refuse it. May be a coroutine function.
        process_response: called with the request and the 101 response before it is sent.
        http_handler: ``async def(request) -> Response`` for plain HTTP requests on the
            same port; without it they get 426.
        subprotocols: supported subprotocols, in order of preference.
        origins: allowed Origin values (None in the list allows a missing Origin);
            others get 403. None allows any.
        compression: ``"deflate"`` (default), a :class:`DeflateOptions`, or None.
        max_size: the largest incoming message (1 MiB by default); larger ones close 1009.
        max_queue: incoming messages buffered before reading from the socket pauses.
        max_queue_bytes: incoming message bytes (after decompression) buffered before
            reading pauses (4 MiB; None: no limit; a message in progress completes).
        write_limit: the outgoing buffer's high-water mark; ``send()`` waits above it.
        ping_interval: seconds between keepalive pings (None: off).
        ping_timeout: seconds to wait for a pong before closing with 1011 (None: off).
        open_timeout: seconds for a client to send a complete request (408 after).
        close_timeout: seconds to wait for a closing handshake.
        max_header_size: the largest request head (431 beyond).
        max_body_size: the largest plain HTTP request body (413 beyond).
        max_connections: open TCP connections (plain HTTP and WebSocket alike, counted
            from accept; 10,000 by default; None: no limit). Past it a new connection
            gets 503 with ``Retry-After`` (plain HTTP), or 101 and close 1013 "try again
            later" (WebSocket: browsers show a close code, never a status).
        max_connections_per_ip: open connections per client IP address (None, the
            default: no limit; behind a proxy every client has the proxy's address).
            Past it: 429 or close 1013.
        message_rate: incoming messages per second per connection, a
            :class:`~tether.asyncio.limits.Rate`, a number or ``(rate, burst)`` (None,
            the default: no limit); past it the connection is closed with 1008.
        connection_rate: new connections per second per client IP, a
            :class:`~tether.asyncio.limits.Rate`, a number or ``(rate, burst)`` (None,
            the default: no limit). Past it: 429 with ``Retry-After`` or close 1013.
        metrics: where the server counts (a new :class:`~tether.metrics.Metrics` by
            default; ``server.metrics``).
        sock: an already bound socket to listen on, instead of ``host`` and ``port``.
        backlog: the listen backlog.
        reuse_port: ``SO_REUSEPORT`` (several processes on one port).

    Raises:
        OSError: the address cannot be bound.
        ValueError: an unsupported ``compression``.
        InvalidOption: a limit below 1 or a rate that is not positive.
        TypeError: an unknown keyword argument (at once, before anything starts).
    """

    def __init__(
        self,
        handler: Handler,
        host: str | Sequence[str] | None = None,
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
        backlog: int = 1024,
        reuse_port: bool | None = None,
        process_request: ProcessRequest | None = None,
        process_response: Callable[[Request, Response], None] | None = None,
        http_handler: HTTPHandler | None = None,
        subprotocols: Sequence[str] | None = None,
        origins: Sequence[str | None] | None = None,
        compression: Compression = "deflate",
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_queue: int = 32,
        max_queue_bytes: int | None = 2**22,
        write_limit: int = 65536,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        max_header_size: int = 16384,
        max_body_size: int = 2**20,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: int | None = None,
        connection_rate: Rate | float | tuple[float, float] | None = None,
        message_rate: Rate | float | tuple[float, float] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        options = ConnectionOptions(
            Side.SERVER,
            deflate_options(compression, Side.SERVER),
            max_size=max_size,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            write_limit=write_limit,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            message_rate=Rate.of(message_rate),
        )
        self._server = Server(
            handler,
            options,
            process_request=process_request,
            process_response=process_response,
            http_handler=http_handler,
            subprotocols=subprotocols,
            origins=origins,
            max_header_size=max_header_size,
            max_body_size=max_body_size,
            max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip,
            connection_rate=connection_rate,
            metrics=metrics,
        )
        self._start = (host, port, ssl, sock, backlog, reuse_port)

    async def _create(self) -> Server:
        host, port, ssl, sock, backlog, reuse_port = self._start
        await self._server.start(
            host, port, ssl=ssl, sock=sock, backlog=backlog, reuse_port=reuse_port
        )
        return self._server

    async def _dispose(self, value: Server, exc: BaseException | None) -> None:
        value.close()
        await value.wait_closed()
