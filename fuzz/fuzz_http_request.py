"""Fuzz the server side of the opening handshake: the HTTP request parser and
:func:`tether.protocol.handshake.server_accept`.

The first bytes choose the limits, whether deflate, subprotocols and an origin list are
configured, and how the input is split; the rest is what a client sends. Invariants:

- ``RequestParser.feed`` raises only :class:`~tether.exceptions.HTTPError`, with a 4xx
  status, and nothing after it has reported an upgrade is fed to it (as the server does);
- the request head of every request is within ``max_header_size`` and the body within
  ``max_body_size``;
- ``server_accept`` on every parsed request returns a 101 or raises an
  :class:`~tether.exceptions.InvalidHandshake` subclass (``InvalidRequest`` with a 4xx
  status); its response serializes.
"""

from __future__ import annotations

from tether.asyncio.http import RequestParser
from tether.exceptions import HTTPError, InvalidHandshake, InvalidRequest
from tether.protocol.deflate import DeflateOptions
from tether.protocol.handshake import Request, server_accept

from ._common import Reader, Target, chunks

__all__ = ["TARGET", "accept", "one_input"]

_HEAD_LIMITS = (64, 1024, 16384)
_BODY_LIMITS = (0, 16, 2**20)


def accept(request: Request, cfg: int) -> None:
    """Run ``server_accept`` on ``request`` with the options ``cfg`` chooses."""
    try:
        result = server_accept(
            request,
            subprotocols=("chat", "superchat") if cfg & 1 else None,
            deflate=DeflateOptions(server_max_window_bits=12) if cfg & 2 else None,
            origins=("https://example.com", None) if cfg & 4 else None,
        )
    except InvalidRequest as exc:
        assert 400 <= exc.status < 500, exc.status
        return
    except InvalidHandshake:
        return
    assert result.response.status == 101
    result.response.serialize()


def one_input(data: bytes) -> None:
    """Parse ``data`` as what a client sends, then try to accept each request."""
    reader = Reader(data)
    cfg = reader.byte()
    split = reader.byte()
    head_limit = _HEAD_LIMITS[cfg % 3]
    body_limit = _BODY_LIMITS[(cfg >> 2) % 3]
    parser = RequestParser(max_header_size=head_limit, max_body_size=body_limit)
    for piece in chunks(reader.rest(), split):
        try:
            requests = parser.feed(piece)
        except HTTPError as exc:
            assert exc.status in (400, 413, 431), exc.status
            return
        for request in requests:
            assert len(request.body) <= body_limit
            # + 4 per header: the ": " and CRLF the parser counts too
            head = len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)
            assert head <= head_limit, (head, head_limit)
            accept(request, cfg >> 4)
        if parser.upgrade_offset is not None:
            return  # the rest belongs to the WebSocket: the server stops feeding here


TARGET = Target("http_request", one_input, max_len=4096)
