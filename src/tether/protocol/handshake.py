"""RFC 6455 section 4: the opening handshake, sans I/O.

HTTP bytes are parsed by the I/O layer (with httptools); this module works on the parsed
:class:`Request` and :class:`Response` and decides what to answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from ..exceptions import InvalidRequest, InvalidResponse, InvalidStatus, NegotiationError
from .deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_accept_response,
    client_offer,
    parse_extensions,
    server_accept_offers,
)

__all__ = [
    "GUID",
    "Headers",
    "Request",
    "Response",
    "ServerAccept",
    "accept_key",
    "build_client_request",
    "check_client_response",
    "generate_key",
    "server_accept",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


class Headers:
    """Case-insensitive HTTP headers that keep order and repeated names.

    The lookup index is built on first use; :meth:`compact` drops it and packs the
    headers into one string until they are read again (servers keep every connection's
    request headers: small matters).
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # A list of (name, value), or packed by compact(): "name\0value\n" each.
        self._items: list[tuple[str, str]] | str = list(items)
        self._index: dict[str, list[str]] | None = None

    def _list(self) -> list[tuple[str, str]]:
        items = self._items
        if isinstance(items, str):
            pairs = (line.split("\0", 1) for line in items.split("\n"))
            # Names come back interned, shared as the parser shares them.
            items = self._items = [(sys.intern(n), v) for n, v in pairs]
        return items

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._list():
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return index

    def compact(self) -> None:
        """Drop the lookup index and pack the headers (both rebuilt when next read)."""
        self._index = None
        items = self._items
        if isinstance(items, list):
            packed = "\n".join(f"{name}\0{value}" for name, value in items)
            if packed.count("\n") == len(items) - 1 and packed.count("\0") == len(items):
                self._items = packed  # (not when a name or value holds NUL or LF)

    def add(self, name: str, value: str) -> None:
        """Append a header."""
        self._list().append((name, value))
        if self._index is not None:
            self._index.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._lookup().get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        values = self._lookup().get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._list())

    def __len__(self) -> int:
        return len(self._list())

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs, in order."""
        return list(self._list())

    def tokens(self, name: str) -> list[str]:
        """Comma-separated tokens of every value of ``name``, lowercased."""
        return [
            token.strip().lower()
            for value in self._lookup().get(name.lower(), ())
            for token in value.split(",")
            if token.strip()
        ]

    def __repr__(self) -> str:
        return f"Headers({self._list()!r})"


@dataclass(slots=True)
class Request:
    """An HTTP request.

    Attributes:
        method: the method (``GET``...).
        target: the request target: path and query string.
        headers: the headers.
        body: the body (empty for an upgrade).
        http_version: ``"1.1"`` or ``"1.0"``.
        keep_alive: whether the connection may carry another request after this one.
        remote_address: the client's address as the server saw it (``(host, port)`` for
            TCP; None when unknown). Set by the server, not parsed from the request.
    """

    method: str
    target: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    http_version: str = "1.1"
    keep_alive: bool = True
    remote_address: Any = None

    @property
    def path(self) -> str:
        """The path, without the query string."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The raw query string (without ``?``)."""
        return self.target.partition("?")[2]

    def serialize(self) -> bytes:
        """The request head and body as bytes."""
        lines = [f"{self.method} {self.target} HTTP/{self.http_version}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(slots=True)
class Response:
    """An HTTP response.

    Attributes:
        status: the status code.
        headers: the headers (a :class:`Headers` or a list of pairs).
        body: the body.
        reason: the reason phrase (derived from the status when empty).
    """

    status: int
    headers: Headers | Sequence[tuple[str, str]] = ()
    body: bytes = b""
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise TypeError(f"a response status is an int from 100 to 599, not {self.status!r}")
        if isinstance(self.headers, (str, bytes)):
            # Response(401, "unauthorized") reads naturally but puts the text in the
            # headers: refuse it here, where the caller's line is in the traceback.
            raise TypeError(
                f"Response headers are (name, value) pairs, not {type(self.headers).__name__}:"
                f" for a text body use Response.text({self.status}, {self.headers!r})"
            )
        if not isinstance(self.headers, Headers):
            items = list(self.headers)
            for item in items:
                if not (
                    isinstance(item, (tuple, list))
                    and len(item) == 2
                    and isinstance(item[0], str)
                    and isinstance(item[1], str)
                ):
                    raise TypeError(
                        f"Response headers are (name, value) pairs of str, not {item!r}"
                    )
            self.headers = Headers(items)
        if isinstance(self.body, str):  # tolerate text bodies from handlers
            self.body = self.body.encode()
        if not self.reason:
            try:
                self.reason = HTTPStatus(self.status).phrase
            except ValueError:
                self.reason = "Unknown"

    def serialize(self) -> bytes:
        """The response head and body as bytes (adds Content-Length when missing)."""
        headers = self.headers
        assert isinstance(headers, Headers)
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if self.status != 101 and "content-length" not in headers:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    @classmethod
    def text(cls, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
        """A short ``text/plain`` response."""
        return cls(
            status,
            [("Content-Type", "text/plain; charset=utf-8"), *headers],
            (message + "\n").encode(),
        )


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_key() -> str:
    """A fresh random ``Sec-WebSocket-Key``: base64 of 16 random bytes (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def is_upgrade_request(request: Request) -> bool:
    """Whether the request asks for a WebSocket upgrade (``Upgrade: websocket``)."""
    return "websocket" in request.headers.tokens("Upgrade")


@dataclass(slots=True)
class ServerAccept:
    """The outcome of a successful server-side handshake."""

    response: Response
    subprotocol: str | None
    deflate: PerMessageDeflate | None


def server_accept(
    request: Request,
    *,
    subprotocols: Sequence[str] | None = None,
    deflate: DeflateOptions | None = None,
    origins: Sequence[str | None] | None = None,
) -> ServerAccept:
    """Validate an upgrade request and build the 101 response (RFC 6455 4.2).

    Args:
        request: the parsed request.
        subprotocols: the subprotocols this server speaks, in order of preference.
        deflate: permessage-deflate options, or None to refuse compression.
        origins: allowed ``Origin`` values; None allows any. ``None`` in the list allows
            requests without an Origin header (non-browser clients).

    Raises:
        InvalidRequest: the request cannot be upgraded; ``status`` says how to answer
            (400, 403, 405, 426).
    """
    headers = request.headers
    if request.method != "GET":
        raise InvalidRequest("the WebSocket handshake must use GET", 405, [("Allow", "GET")])
    if request.http_version != "1.1":
        raise InvalidRequest("the WebSocket handshake needs HTTP/1.1", 400)
    if len(headers.get_all("Host")) != 1:
        raise InvalidRequest("missing or repeated Host header", 400)
    if "websocket" not in headers.tokens("Upgrade"):
        raise InvalidRequest(
            "missing 'Upgrade: websocket'",
            426,
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
    if "upgrade" not in headers.tokens("Connection"):
        raise InvalidRequest("the Connection header lacks the 'upgrade' token", 400)
    versions = headers.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise InvalidRequest(
            "unsupported WebSocket version (only 13 is supported)",
            426,
            [("Sec-WebSocket-Version", "13")],
        )
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise InvalidRequest("missing or repeated Sec-WebSocket-Key", 400)
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise InvalidRequest("Sec-WebSocket-Key is not base64 of 16 bytes", 400)
    if origins is not None:
        origin_values = headers.get_all("Origin")
        if len(origin_values) > 1:
            raise InvalidRequest("repeated Origin header", 400)
        origin = origin_values[0] if origin_values else None
        if origin not in origins:
            raise InvalidRequest(f"origin not allowed: {origin}", 403)

    chosen: str | None = None
    if subprotocols:
        offered = [
            p.strip() for v in headers.get_all("Sec-WebSocket-Protocol") for p in v.split(",")
        ]
        for proto in subprotocols:
            if proto in offered:
                chosen = proto
                break

    codec: PerMessageDeflate | None = None
    if deflate is not None:
        try:
            offers = parse_extensions(headers.get_all("Sec-WebSocket-Extensions"))
        except NegotiationError as exc:
            raise InvalidRequest(str(exc), 400) from exc
        codec = server_accept_offers(offers, deflate)

    response = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
    )
    if chosen is not None:
        response.add("Sec-WebSocket-Protocol", chosen)
    if codec is not None:
        response.add("Sec-WebSocket-Extensions", codec.params)
    return ServerAccept(Response(101, response), chosen, codec)


def build_client_request(
    host: str,
    target: str,
    key: str,
    *,
    subprotocols: Sequence[str] | None = None,
    deflate: DeflateOptions | None = None,
    origin: str | None = None,
    additional_headers: Iterable[tuple[str, str]] = (),
    user_agent: str | None = "tether",
) -> Request:
    """The upgrade request a client sends (RFC 6455 4.1).

    Args:
        host: the ``Host`` header value (with the port when not the default).
        target: path and query.
        key: the ``Sec-WebSocket-Key`` (see :func:`generate_key`).
        subprotocols: subprotocols to offer.
        deflate: permessage-deflate options to offer, or None.
        origin: an ``Origin`` header value.
        additional_headers: extra headers.
        user_agent: the ``User-Agent`` value, or None for none.
    """
    headers = Headers(
        [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ]
    )
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if deflate is not None:
        headers.add("Sec-WebSocket-Extensions", client_offer(deflate))
    if user_agent:
        headers.add("User-Agent", user_agent)
    for name, value in additional_headers:
        headers.add(name, value)
    return Request("GET", target, headers)


def check_client_response(
    response: Response,
    key: str,
    *,
    subprotocols: Sequence[str] | None = None,
    deflate: DeflateOptions | None = None,
) -> tuple[str | None, PerMessageDeflate | None]:
    """Check the server's answer to an upgrade request (RFC 6455 4.1, 4.2.2).

    Returns:
        The chosen subprotocol and the negotiated permessage-deflate codec.

    Raises:
        InvalidStatus: the status is not 101 (carries status, headers and body).
        InvalidResponse: a 101 with a wrong Upgrade, Connection or Accept header.
        NegotiationError: a subprotocol or extension we did not offer.
    """
    headers = response.headers
    assert isinstance(headers, Headers)
    if response.status != 101:
        raise InvalidStatus(response.status, headers.items(), response.body)
    if "websocket" not in headers.tokens("Upgrade"):
        raise InvalidResponse("missing 'Upgrade: websocket' in the response")
    if "upgrade" not in headers.tokens("Connection"):
        raise InvalidResponse("the Connection header lacks the 'upgrade' token")
    accept = headers.get_all("Sec-WebSocket-Accept")
    if accept != [accept_key(key)]:
        raise InvalidResponse("wrong Sec-WebSocket-Accept")
    chosen = headers.get_all("Sec-WebSocket-Protocol")
    subprotocol: str | None = None
    if chosen:
        if len(chosen) > 1 or not subprotocols or chosen[0] not in subprotocols:
            raise NegotiationError(f"the server chose a subprotocol we did not offer: {chosen}")
        subprotocol = chosen[0]
    ext_values = headers.get_all("Sec-WebSocket-Extensions")
    codec: PerMessageDeflate | None = None
    if ext_values:
        if deflate is None:
            raise NegotiationError("the server accepted an extension we did not offer")
        codec = client_accept_response(ext_values, deflate)
    return subprotocol, codec
