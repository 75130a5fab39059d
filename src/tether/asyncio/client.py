"""The asyncio WebSocket client: ``await connect(uri)``, ``async with connect(uri)``, and
``async for ws in connect(uri)`` (reconnects with exponential backoff and jitter)."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as ssl_module
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import (
    InvalidHandshake,
    InvalidResponse,
    InvalidStatus,
    InvalidURI,
    OpenTimeout,
)
from ..protocol.connection import DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_SIZE, Side
from ..protocol.handshake import (
    Response,
    build_client_request,
    check_client_response,
    generate_key,
)
from .connection import WebSocket
from .http import HTTPError, ResponseParser
from .opening import Opening
from .options import Compression, ConnectionOptions, deflate_options

__all__ = ["Backoff", "WebSocketURI", "connect", "parse_uri"]

logger = logging.getLogger("tether.client")


@dataclass(frozen=True, slots=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI."""

    secure: bool
    host: str
    port: int
    target: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header value (brackets for IPv6, port when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != (443 if self.secure else 80):
            host = f"{host}:{self.port}"
        return host


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a WebSocket URI (RFC 6455 3).

    Raises:
        InvalidURI: not a ws:// or wss:// URI, or it has a fragment or user info.
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(f"not a ws:// or wss:// URI: {uri!r}")
    if parsed.fragment:
        raise InvalidURI("a WebSocket URI cannot have a fragment")
    if not parsed.hostname:
        raise InvalidURI(f"no host in {uri!r}")
    if parsed.username or parsed.password:
        raise InvalidURI("user info in a WebSocket URI is not supported")
    secure = parsed.scheme == "wss"
    try:
        port = parsed.port or (443 if secure else 80)
    except ValueError as exc:
        raise InvalidURI(str(exc)) from exc
    target = parsed.path or "/"
    if parsed.query:
        target += "?" + parsed.query
    return WebSocketURI(secure, parsed.hostname, port, target)


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter.

    ``delay(n) = min(delay_max, delay_initial * factor**n)``, then randomized uniformly in
    ``[d * (1 - randomization_factor), d * (1 + randomization_factor)]`` and capped at
    ``delay_max``.

    Attributes:
        delay_initial: the first delay in seconds.
        delay_max: the largest delay.
        factor: growth per attempt.
        randomization_factor: jitter, 0 (none) to 1.
        rng: the random source (seed it in tests).
    """

    delay_initial: float = 1.0
    delay_max: float = 5.0
    factor: float = 2.0
    randomization_factor: float = 0.5
    rng: random.Random | None = None

    def delay(self, attempt: int) -> float:
        """The delay before reconnection attempt ``attempt`` (0-based)."""
        base = min(self.delay_max, self.delay_initial * self.factor ** min(attempt, 64))
        if self.randomization_factor:
            r = (self.rng or random).random()
            base *= 1 + self.randomization_factor * (2 * r - 1)
        return max(0.0, min(self.delay_max, base))


class _ClientHTTPProtocol(asyncio.Protocol):
    def __init__(self, request_bytes: bytes) -> None:
        self.request_bytes = request_bytes
        self.parser = ResponseParser()
        self.done: asyncio.Future[tuple[Response, bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request_bytes)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            self.parser.feed(data)
        except HTTPError as exc:
            self.done.set_exception(InvalidResponse(str(exc)))
            return
        if self.parser.upgrade_offset is not None:
            assert self.transport is not None
            self.transport.pause_reading()
            self.done.set_result((self.parser.response(), data[self.parser.upgrade_offset :]))
        elif self.parser.complete:
            self.done.set_result((self.parser.response(), b""))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self.parser.headers_done:
                self.done.set_result((self.parser.response(), b""))
            else:
                self.done.set_exception(
                    InvalidResponse("connection closed during the opening handshake")
                )


class connect(Opening[WebSocket]):
    """Open a WebSocket connection: ``ws = await connect(uri)``.

    Also ``async with connect(uri) as ws:`` (closed on exit), and ``async for ws in
    connect(uri):`` which yields a new connection each time the previous one dropped,
    waiting with exponential backoff and jitter between attempts; it stops after a
    deliberate ``close()``: a close by the server (1000, 1001 on a restart, ...) or a
    dropped connection leads to a new attempt.

    Args:
        uri: ``ws://`` or ``wss://`` URI.
        ssl: an SSLContext for ``wss://`` (the default context when omitted).
        server_hostname: the TLS server name, when it differs from the URI's host.
        compression: ``"deflate"`` (default), a :class:`DeflateOptions`, or None.
        subprotocols: subprotocols to offer.
        origin: an ``Origin`` header.
        additional_headers: extra request headers (tokens, cookies...).
        user_agent: the ``User-Agent`` header (None for none).
        max_size: the largest incoming message (1 MiB default; larger closes 1009).
        max_queue: incoming messages buffered before reading pauses.
        max_queue_bytes: incoming message bytes (after decompression) buffered before
            reading pauses (4 MiB; None: no limit; a message in progress always completes).
        write_limit: outgoing buffer high-water mark.
        ping_interval: keepalive ping period (None: off).
        ping_timeout: seconds without pong before closing with 1011 (None: off).
        open_timeout: the whole opening handshake (TCP, TLS, HTTP) in seconds.
        close_timeout: seconds to wait for the closing handshake.
        backoff: the reconnection policy for ``async for``.
        on_open: browser-like callback, called once the connection is open.
        on_message: browser-like callback ``(data)``; messages go to it instead of ``recv``.
        on_error: browser-like callback ``(exc)`` when the connection fails.
        on_close: browser-like callback ``(code, reason)``.

    Raises:
        InvalidURI: a bad URI.
        InvalidStatus: the server answered with another status than 101.
        InvalidHandshake: any other handshake failure.
        OpenTimeout: the handshake took longer than ``open_timeout``.
        OSError: the TCP connection failed.
        ValueError: an unsupported ``compression``.
        TypeError: an unknown keyword argument (at once, before connecting).
    """

    def __init__(
        self,
        uri: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        compression: Compression = "deflate",
        subprotocols: Sequence[str] | None = None,
        origin: str | None = None,
        additional_headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        user_agent: str | None = "tether",
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_queue: int = 32,
        max_queue_bytes: int | None = DEFAULT_MAX_QUEUE_BYTES,
        write_limit: int = 65536,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        backoff: Backoff | None = None,
        on_open: Callable[[], Any] | None = None,
        on_message: Callable[[Any], Any] | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
        on_close: Callable[[int, str], Any] | None = None,
    ) -> None:
        self._callbacks = (on_open, on_message, on_error, on_close)
        self.uri = parse_uri(uri)
        if ssl is not None and not self.uri.secure:
            raise InvalidURI("an ssl context was given for a ws:// URI")
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.options = ConnectionOptions(
            Side.CLIENT,
            deflate_options(compression, Side.CLIENT),
            max_size=max_size,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            write_limit=write_limit,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
        )
        self.subprotocols = subprotocols
        self.origin = origin
        if isinstance(additional_headers, dict):
            additional_headers = list(additional_headers.items())
        self.additional_headers = list(additional_headers or ())
        self.user_agent = user_agent
        self.backoff = backoff or Backoff()

    async def _create(self) -> WebSocket:
        try:
            async with asyncio.timeout(self.options.open_timeout):
                return await self._handshake()
        except TimeoutError as exc:
            if isinstance(exc, OpenTimeout):
                raise
            raise OpenTimeout(
                f"opening handshake timed out after {self.options.open_timeout}s"
            ) from exc

    async def _handshake(self) -> WebSocket:
        loop = asyncio.get_running_loop()
        uri = self.uri
        key = generate_key()
        request = build_client_request(
            uri.host_header,
            uri.target,
            key,
            subprotocols=self.subprotocols,
            deflate=self.options.deflate,
            origin=self.origin,
            additional_headers=self.additional_headers,
            user_agent=self.user_agent,
        )
        ssl_ctx: ssl_module.SSLContext | None = None
        if uri.secure:
            ssl_ctx = self.ssl or ssl_module.create_default_context()
        kwargs: dict[str, Any] = {}
        if ssl_ctx is not None:
            kwargs["server_hostname"] = self.server_hostname or uri.host
        transport, proto = await loop.create_connection(
            lambda: _ClientHTTPProtocol(request.serialize()),
            uri.host,
            uri.port,
            ssl=ssl_ctx,
            **kwargs,
        )
        try:
            response, leftover = await proto.done
            subprotocol, deflate = check_client_response(
                response, key, subprotocols=self.subprotocols, deflate=self.options.deflate
            )
        except BaseException:
            transport.abort()
            raise
        ws = self.options.websocket(
            deflate, request=request, response=response, subprotocol=subprotocol
        )
        on_open, on_message, on_error, on_close = self._callbacks
        ws.on_open, ws.on_error, ws.on_close = on_open, on_error, on_close
        ws._on_message = on_message  # started by start_callbacks() below
        ws.attach(transport, leftover)
        transport.resume_reading()
        ws.start_callbacks()
        # The path only: a query may carry a token, and tokens never reach the logs.
        ws.log.debug("connected to %s", uri.host_header + uri.target.partition("?")[0])
        return ws

    async def _dispose(self, value: WebSocket, exc: BaseException | None) -> None:
        await value.close()

    def __aiter__(self) -> AsyncIterator[WebSocket]:
        return self._reconnecting()

    async def _reconnecting(self) -> AsyncIterator[WebSocket]:
        attempt = 0
        while True:
            try:
                ws = await self._create()
            except InvalidStatus as exc:
                # 4xx means "do not retry" except 408/429; 5xx may be temporary.
                if 400 <= exc.status < 500 and exc.status not in (408, 429):
                    raise
                ws = None
            except (OSError, InvalidHandshake, OpenTimeout) as exc:
                logger.info("connection attempt %d failed: %s", attempt + 1, exc)
                ws = None
            if ws is None:
                await asyncio.sleep(self.backoff.delay(attempt))
                attempt += 1
                continue
            attempt = 0
            yield ws
            if not ws.closed:
                await ws.wait_closed()
            if ws.closed_by_user:
                return
            await asyncio.sleep(self.backoff.delay(0))
