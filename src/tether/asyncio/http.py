"""HTTP/1.1 message parsing for the opening handshake and plain HTTP, with httptools."""

from __future__ import annotations

import sys

import httptools

from ..exceptions import HTTPError
from ..protocol.handshake import Headers, Request, Response

__all__ = ["HTTPError", "RequestParser", "ResponseParser"]

# Method and version: httptools knows a fixed set of each, so one string per value is
# shared by every request instead of a new one each.
_intern = sys.intern


def _feed_bounded(
    parser: httptools.HttpRequestParser | httptools.HttpResponseParser,
    data: bytes,
    owner: RequestParser | ResponseParser,
    limit: int,
    status: int,
) -> int | None:
    """Feed ``data`` to ``parser``, checking the head size while it streams in.

    httptools reports a header only once its value is complete, and joins the pieces of
    a value as they come (quadratic for a value streamed in many pieces): while a head is
    in progress, input is fed in slices of at most what is left of ``limit``, so an
    unterminated head fails (``status``) as soon as it passes the limit, and the pieces
    joined stay under it. Returns the upgrade offset in ``data``, or None.

    Raises:
        HTTPError: the head passed ``limit``.
        httptools.HttpParserError: malformed input.
    """
    pos = 0
    n = len(data)
    while pos < n:
        if owner._in_head:
            step = max(1, limit + 1 - owner._head_fed)
            chunk = data[pos : pos + step] if pos or step < n else data
        else:
            chunk = data[pos:] if pos else data
        try:
            parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as exc:
            return pos + (int(exc.args[0]) if exc.args else len(chunk))
        pos += len(chunk)
        if owner._in_head:
            # Counted from the slice that started the head: over by at most a slice.
            owner._head_fed += len(chunk)
            if owner._head_fed > limit:
                raise HTTPError("head too large", status)
        else:
            owner._head_fed = 0
    return None


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
        self._head_fed = 0  # bytes fed while the current head is incomplete

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
        self._head_fed = 0

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body_size:
            raise HTTPError("request body too large", 413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        self.requests.append(
            Request(
                _intern(parser.get_method().decode("ascii")),
                self._url.decode("latin-1"),
                Headers(self._headers),
                b"".join(self._body),
                _intern(parser.get_http_version()),
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
            offset = _feed_bounded(self._parser, data, self, self.max_header_size, 431)
        except HTTPError as exc:
            raise HTTPError("request head too large", exc.status) from None
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HTTPError):
                raise exc.__context__ from None
            raise HTTPError(f"malformed HTTP request: {exc}", 400) from exc
        if offset is not None:
            self.upgrade_offset = offset
        requests = self.requests
        self.requests = []
        return requests


class ResponseParser:
    """Incremental parser of the server's answer to an upgrade request (client side).

    Args:
        max_body_size: a non-101 body is kept up to this size (the rest is dropped).
        max_header_size: the largest response head accepted (64 KiB), checked while it
            streams in.
    """

    def __init__(self, *, max_body_size: int = 65536, max_header_size: int = 65536) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self._in_head = True
        self._head_fed = 0
        self.headers_done = False
        self.complete = False
        self.upgrade_offset: int | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > self.max_header_size:
            raise HTTPError("response head too large")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:  # RFC 9110 15: the range a status code can take
            raise HTTPError(f"malformed HTTP response: status {status}")
        self.headers_done = True
        self._in_head = False

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
            HTTPError: malformed response, or a head over ``max_header_size``.
        """
        try:
            offset = _feed_bounded(self._parser, data, self, self.max_header_size, 502)
        except HTTPError:
            raise HTTPError("response head too large") from None
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HTTPError):
                raise exc.__context__ from None
            raise HTTPError(f"malformed HTTP response: {exc}") from exc
        if offset is not None:
            self.upgrade_offset = offset
            self.complete = True

    def response(self) -> Response:
        """The response parsed so far."""
        return Response(
            self._parser.get_status_code(), Headers(self._headers), b"".join(self._body)
        )
