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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..exceptions import ConnectionClosed, InvalidRequest
from ..metrics import Metrics
from ..protocol.connection import DEFAULT_MAX_SIZE, Side
from ..protocol.handshake import Request, Response, is_upgrade_request, server_accept
from .connection import WebSocket
from .http import HTTPError, RequestParser
from .linger import linger_close
from .opening import Opening
from .options import Compression, ConnectionOptions, deflate_options

__all__ = ["HTTPHandler", "Handler", "ProcessRequest", "Server", "serve"]

logger = logging.getLogger("tether.server")

Handler = Callable[[WebSocket], Awaitable[None]]
ProcessRequest = Callable[[Request], "Response | Awaitable[Response | None] | None"]
HTTPHandler = Callable[[Request], Awaitable[Response]]


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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if server._max_connections is not None and len(server._open) >= server._max_connections:
            self._respond(Response.text(503, "too many connections"), close=True)
            return
        server._http.add(self)
        self._arm_timer()

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
        try:
            requests = self.parser.feed(data)
        except HTTPError as exc:
            logger.info("bad HTTP request: %s", exc)
            self._respond(Response.text(exc.status, str(exc)), close=True)
            return
        if self.parser.upgrade_offset is not None:
            self.leftover = data[self.parser.upgrade_offset :]
            self.upgrading = True
            if self.transport is not None:
                self.transport.pause_reading()
        if requests:
            peer = self.transport.get_extra_info("peername") if self.transport else None
            for request in requests:
                request.remote_address = peer
        self.pending.extend(requests)
        if len(self.pending) > 8:
            self._respond(Response.text(429, "too many pipelined requests"), close=True)
            return
        self._next()

    def _next(self) -> None:
        if self.busy or not self.pending or self.transport is None:
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
        self._forget()
        transport.write(accepted.response.serialize())
        ws = server.options.websocket(
            accepted.deflate,
            request=request,
            response=accepted.response,
            subprotocol=accepted.subprotocol,
        )
        server._open.add(ws)
        ws._closed.add_done_callback(lambda _: server._open.discard(ws))
        ws.attach(transport, self.leftover)
        self.transport = None
        if not transport.is_closing():
            transport.resume_reading()
        if logger.isEnabledFor(logging.DEBUG):
            ws.log.debug("open %s %s", request.target, ws.remote_address)
        request.headers.compact()
        ws.start_callbacks()
        # The handler runs in a task of its own, so this HTTP protocol (parser, buffers)
        # is freed now rather than kept for the connection's lifetime.
        task = asyncio.ensure_future(server._run_handler(ws))
        server._track(task)

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
        max_connections: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
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
        self._open: set[WebSocket] = set()
        self._http: set[_HTTPProtocol] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._servers: list[asyncio.AbstractServer] = []
        self._closed_event = asyncio.Event()

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
        max_connections: above this many open connections, new ones get 503.
        metrics: where the server counts (a new :class:`~tether.metrics.Metrics` by
            default; ``server.metrics``).
        sock: an already bound socket to listen on, instead of ``host`` and ``port``.
        backlog: the listen backlog.
        reuse_port: ``SO_REUSEPORT`` (several processes on one port).

    Raises:
        OSError: the address cannot be bound.
        ValueError: an unsupported ``compression``.
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
        max_connections: int | None = None,
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
