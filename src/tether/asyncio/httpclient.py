"""A minimal keep-alive HTTP/1.1 client on ``asyncio.Protocol``, responses parsed by
httptools (:class:`~tether.asyncio.http.ResponseParser`).

It is what HTTP long-polling needs and no more: one request in flight per connection,
bodies as bytes, no redirects, no chunked request bodies, no retries. The Engine.IO client
keeps two of them per session, one for the ``GET`` polls and one for the ``POST`` writes::

    conn = HTTPConnection("127.0.0.1", 3000)
    response = await conn.request("GET", "/engine.io/?EIO=4&transport=polling", timeout=5)
    conn.close()

Errors are those of the asyncio layer, not of a protocol above it: a caller that speaks
one (the Engine.IO client) turns them into its own.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Iterable, Sequence
from typing import cast

from ..exceptions import HTTPConnectionError, HTTPError
from ..exceptions import TimeoutError as TetherTimeoutError
from ..protocol.handshake import Headers, Response
from .http import ResponseParser

__all__ = ["HTTPConnection", "declared_length", "format_host", "header_list"]


class _HTTPClientProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self, max_body_size: int) -> None:
        self.max_body_size = max_body_size
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.dead = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def start(self, request: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.parser = ResponseParser(max_body_size=self.max_body_size)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        parser, waiter = self.parser, self.waiter
        if parser is None or waiter is None or waiter.done():
            # Bytes nobody asked for: the connection is out of step, drop it.
            self._fail(HTTPError("unexpected data from the HTTP server"))
            return
        try:
            parser.feed(data)
        except HTTPError as exc:
            self._fail(HTTPError(f"malformed HTTP response: {exc}", exc.status))
            return
        if parser.complete:
            self.parser = None
            waiter.set_result(parser.response())

    def _fail(self, exc: BaseException) -> None:
        self.dead = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                HTTPConnectionError(f"HTTP connection lost: {exc or 'closed by the server'}")
            )

    def abort(self) -> None:
        self.dead = True
        if self.transport is not None:
            self.transport.abort()


class HTTPConnection:
    """A keep-alive HTTP/1.1 connection to one host, opened on the first request and
    opened again when the server closed it.

    Args:
        host: the host name or address to connect to.
        port: the TCP port.
        secure: use TLS (https).
        ssl: the TLS context (with ``secure``; the default context when None).
        host_header: the ``Host`` header (:func:`format_host` when None).
        headers: extra headers for every request.
        max_body_size: response bodies are cut at this size (see :func:`declared_length`).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        secure: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        host_header: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        max_body_size: int = 65536,
    ) -> None:
        self.host = host
        self.port = port
        self.secure = secure
        self.ssl = ssl
        self.host_header = host_header or format_host(host, port, secure=secure)
        self.headers = list(headers)
        self.max_body_size = max_body_size
        self._proto: _HTTPClientProtocol | None = None

    async def _open(self) -> _HTTPClientProtocol:
        loop = asyncio.get_running_loop()
        ssl_ctx = None
        if self.secure:
            ssl_ctx = self.ssl or ssl_module.create_default_context()
        try:
            _, proto = await loop.create_connection(
                lambda: _HTTPClientProtocol(self.max_body_size),
                self.host,
                self.port,
                ssl=ssl_ctx,
            )
        except OSError as exc:
            raise HTTPConnectionError(f"cannot connect to {self.host_header}: {exc}") from exc
        return proto

    async def request(
        self, method: str, target: str, body: bytes | None = None, *, timeout: float
    ) -> Response:
        """Send one request and return its response (any status).

        Raises:
            HTTPConnectionError: the server is unreachable, or closed the connection before
                the response was complete.
            HTTPError: a malformed response, or bytes nobody asked for.
            TimeoutError: no complete response within ``timeout`` seconds (tether's, also
                the builtin one).
        """
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        if body is not None:
            head.append("Content-Type: text/plain;charset=UTF-8")
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        # No retry on a failed request, even on a reused keep-alive connection: a poll
        # whose answer was lost on the wire would lose packets silently. A connection the
        # server closed while idle is seen (connection_lost) and replaced before reuse.
        proto = self._proto
        if proto is None or proto.dead:
            proto = self._proto = await self._open()
        try:
            async with asyncio.timeout(timeout):
                response = await proto.start(data)
        except TimeoutError:
            self.close()
            raise TetherTimeoutError(f"{method} timed out after {timeout}s") from None
        except (ConnectionError, HTTPError):
            self.close()
            raise
        if _wants_close(response):
            self.close()
        return response

    def close(self) -> None:
        """Drop the connection at once (a request in flight fails); the next request opens
        a new one."""
        proto = self._proto
        self._proto = None
        if proto is not None:
            proto.abort()


def _wants_close(response: Response) -> bool:
    headers = response.headers
    assert isinstance(headers, Headers)
    return any(token.lower() == "close" for token in headers.tokens("connection"))


def declared_length(response: Response) -> int | None:
    """The response's ``Content-Length``, when it has a valid one. A body shorter than that
    was cut at ``max_body_size``."""
    headers = response.headers
    assert isinstance(headers, Headers)
    length = headers.get("content-length")
    return int(length) if length is not None and length.isdigit() else None


def header_list(
    headers: Iterable[tuple[str, str]] | dict[str, str] | None,
) -> list[tuple[str, str]]:
    """Extra headers as a list of ``(name, value)``, given as a dict, pairs or None."""
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or ())


def format_host(host: str, port: int, *, secure: bool) -> str:
    """The ``Host`` header for ``host`` and ``port``: an IPv6 address in brackets, the
    port left out when it is the scheme's default (RFC 9110 7.2)."""
    text = f"[{host}]" if ":" in host else host
    if port != (443 if secure else 80):
        text = f"{text}:{port}"
    return text
