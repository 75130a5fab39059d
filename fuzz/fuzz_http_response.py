"""Fuzz the client side of the opening handshake: the HTTP response parser and
:func:`tether.protocol.handshake.check_client_response`.

The input is what a server answers to the upgrade request of key ``KEY``. Invariants:

- ``ResponseParser.feed`` raises only :class:`~tether.exceptions.HTTPError`;
- the body kept is within ``max_body_size``;
- ``check_client_response`` on the response (once the head is complete, as the client
  does) raises only :class:`~tether.exceptions.InvalidHandshake` subclasses.
"""

from __future__ import annotations

from tether.asyncio.http import ResponseParser
from tether.exceptions import HTTPError, InvalidHandshake
from tether.protocol.deflate import DeflateOptions
from tether.protocol.handshake import check_client_response

from ._common import Reader, Target, chunks

__all__ = ["KEY", "TARGET", "one_input"]

#: The Sec-WebSocket-Key of the request being answered (RFC 6455 1.3's example).
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_DEFLATE = (
    None,
    DeflateOptions(),
    DeflateOptions(server_no_context_takeover=True, client_max_window_bits=10),
)


def one_input(data: bytes) -> None:
    """Parse ``data`` as the server's answer, then check it as the client would."""
    reader = Reader(data)
    cfg = reader.byte()
    split = reader.byte()
    body_limit = (0, 16, 65536)[cfg % 3]
    parser = ResponseParser(max_body_size=body_limit)
    try:
        for piece in chunks(reader.rest(), split):
            parser.feed(piece)
            if parser.upgrade_offset is not None or parser.complete:
                break
    except HTTPError:
        return
    if not parser.headers_done:
        return
    response = parser.response()
    assert len(response.body) <= body_limit
    try:
        check_client_response(
            response,
            KEY,
            subprotocols=("chat",) if cfg & 4 else None,
            deflate=_DEFLATE[(cfg >> 3) % 3],
        )
    except InvalidHandshake:
        pass


TARGET = Target("http_response", one_input, max_len=4096)
