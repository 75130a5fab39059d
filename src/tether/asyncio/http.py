"""HTTP/1.1 message parsing for the opening handshake and plain HTTP, with httptools."""

from __future__ import annotations

import sys

import httptools

from ..exceptions import HTTPError
from ..protocol.handshake import Headers, Request, Response

__all__ = ["HTTPError", "RequestParser", "ResponseParser"]


class RequestParser:
    """Incremental HTTP/1.1 request parser with size limits.

    Args:
        max_header_size: the largest request head accepted (431 beyond).
        max_body_size: the largest body accepted (413 beyond).
    """

    def __init__(self, *, max_header_size: int = 16384, max_body_size: int = 2**20) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self._reset()
        self.requests: list[Request] = []
        self.upgrade_offset: int | None = None

    def _reset(self) -> None:
        self._url = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self._in_head = True

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        # Interned names are shared by every connection's request.
        self._headers.append((sys.intern(name.decode("latin-1")), value.decode("latin-1")))
        self._count(len(name) + len(value) + 4)
        if len(self._headers) > 100:
            raise HTTPError("too many headers", 431)

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body_size:
            raise HTTPError("request body too large", 413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        self.requests.append(
            Request(
                parser.get_method().decode("ascii"),
                self._url.decode("latin-1"),
                Headers(self._headers),
                b"".join(self._body),
                parser.get_http_version(),
                bool(parser.should_keep_alive()),
            )
        )

    def _count(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self.max_header_size:
            raise HTTPError("request head too large", 431)

    def feed(self, data: bytes) -> list[Request]:
        """Parse bytes; return the requests completed.

        After an upgrade request, :attr:`upgrade_offset` is where the other protocol's
        bytes start in ``data``.

        Raises:
            HTTPError: malformed or oversized input.
        """
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_offset = int(exc.args[0]) if exc.args else len(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HTTPError):
                raise exc.__context__ from None
            raise HTTPError(f"malformed HTTP request: {exc}", 400) from exc
        requests = self.requests
        self.requests = []
        return requests


class ResponseParser:
    """Incremental parser of the server's answer to an upgrade request (client side).

    Args:
        max_body_size: a non-101 body is kept up to this size (the rest is dropped).
    """

    def __init__(self, *, max_body_size: int = 65536) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self.max_body_size = max_body_size
        self.headers_done = False
        self.complete = False
        self.upgrade_offset: int | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > 65536:
            raise HTTPError("response head too large")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        room = self.max_body_size - self._body_size
        if room > 0:
            self._body.append(body[:room])
            self._body_size += min(room, len(body))

    def on_message_complete(self) -> None:
        self.complete = True

    def feed(self, data: bytes) -> None:
        """Parse bytes.

        Raises:
            HTTPError: malformed response.
        """
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_offset = int(exc.args[0]) if exc.args else len(data)
            self.complete = True
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HTTPError):
                raise exc.__context__ from None
            raise HTTPError(f"malformed HTTP response: {exc}") from exc

    def response(self) -> Response:
        """The response parsed so far."""
        return Response(
            self._parser.get_status_code(), Headers(self._headers), b"".join(self._body)
        )
