"""Fuzz permessage-deflate (RFC 7692): the inflater with its limit, the codec round trip
and the negotiation of the ``Sec-WebSocket-Extensions`` header.

The first byte chooses the mode:

0. inflate: the rest is a compressed message, fed in pieces with the remaining budget as
   the connection does; only ``PayloadTooBig`` and ``ProtocolError`` may come out, and
   no more than the limit is ever returned (a bomb stops at the limit);
1. round trip: the rest, compressed then inflated, comes back unchanged;
2. negotiation: the rest (latin-1 text, split on newlines) is the header values; the
   parser and both sides' negotiation raise only ``NegotiationError``.
"""

from __future__ import annotations

from tether.exceptions import NegotiationError, PayloadTooBig, ProtocolError
from tether.protocol.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_accept_response,
    parse_extensions,
    server_accept_offers,
)

from ._common import Reader, Target, chunks

__all__ = ["TARGET", "one_input"]

_LIMITS = (0, 1, 125, 4096, 2**20)
_OPTIONS = (
    DeflateOptions(),
    DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
    DeflateOptions(server_max_window_bits=9, client_max_window_bits=9),
)


def _codec(nct: bool) -> PerMessageDeflate:
    return PerMessageDeflate(
        local_no_context_takeover=nct,
        remote_no_context_takeover=nct,
        local_max_window_bits=15,
        options=DeflateOptions(threshold=0),
    )


def _inflate(reader: Reader) -> None:
    cfg = reader.byte()
    limit = _LIMITS[cfg % len(_LIMITS)]
    codec = _codec(bool(cfg & 8))
    # Two messages through one decoder: context takeover carries the window over.
    total = 0
    for message in reader.rest().split(b"\x00\x00\xff\xff", 1):
        inflated = 0
        try:
            for piece in chunks(message, cfg >> 4):
                out = codec.decompress(piece, limit - inflated)
                inflated += len(out)
                assert inflated <= limit, (inflated, limit)
            inflated += len(codec.end_message(limit - inflated))
        except (PayloadTooBig, ProtocolError) as exc:
            assert exc.code in (1007, 1009), exc.code
            return
        assert inflated <= limit, (inflated, limit)
        total += inflated


def _round_trip(reader: Reader) -> None:
    cfg = reader.byte()
    sender, receiver = _codec(bool(cfg & 1)), _codec(bool(cfg & 1))
    payload = reader.rest()
    for message in (payload, payload[::-1]):
        compressed = sender.compress(message)
        limit = len(message)
        restored = receiver.decompress(compressed, limit) + receiver.end_message(limit)
        assert restored == message


def _negotiate(reader: Reader) -> None:
    options = _OPTIONS[reader.byte() % len(_OPTIONS)]
    values = reader.rest().decode("latin-1").split("\n")
    try:
        offers = parse_extensions(values)
    except NegotiationError:
        return
    codec = server_accept_offers(offers, options)
    if codec is not None:
        # What the server answers, the client that offered it must accept.
        assert parse_extensions([codec.params])
    try:
        client_accept_response(values, options)
    except NegotiationError:
        pass


def one_input(data: bytes) -> None:
    """Run the mode the first byte chooses."""
    reader = Reader(data)
    mode = reader.byte() % 3
    (_inflate, _round_trip, _negotiate)[mode](reader)


TARGET = Target("deflate", one_input, max_len=8192)
