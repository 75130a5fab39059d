"""Fuzz the RFC 6455 frame parser: ``Connection.receive_data``.

The first bytes choose the configuration (server or client side, permessage-deflate or
not, context takeover, size limit, deferred failures, how the input is split); the rest
is what the peer sends. The module's contract: bad bytes fail the connection with a close
code, they never raise. Invariants checked on every input:

- ``receive_data`` raises nothing;
- the same bytes fed whole and fed in pieces give the same events, the same failure
  (class and close code) and the same bytes to send;
- a failed connection has queued a close frame with the failure's code, one of 1002,
  1007, 1009;
- no message is longer than ``max_size`` (after decompression: a deflate bomb stops at the
  limit), nothing is kept in the parser's buffer that it could not still need;
- the compiled mask twin, when present, agrees with the pure-Python one.
"""

from __future__ import annotations

from tether.protocol import frames
from tether.protocol.connection import Connection, Side
from tether.protocol.deflate import DeflateOptions, PerMessageDeflate
from tether.protocol.events import BinaryMessage, Event, TextMessage

from ._common import Reader, Target, chunks

__all__ = ["TARGET", "one_input"]

_LIMITS = (125, 1024, 65536, 2**20)
_FIXED_MASK = b"\x37\xfa\x21\x3d"


def _connection(side: Side, max_size: int, deflate: int, defer: bool) -> Connection:
    codec = None
    if deflate:
        codec = PerMessageDeflate(
            local_no_context_takeover=bool(deflate & 2),
            remote_no_context_takeover=bool(deflate & 4),
            local_max_window_bits=15,
            options=DeflateOptions(),
        )
    conn = Connection(side, max_size=max_size, deflate=codec, mask_source=lambda: _FIXED_MASK)
    conn.defer_failures = defer
    return conn


def _outcome(conn: Connection) -> tuple[list[Event], object, list[bytes]]:
    failure = conn.failure or conn.pending_failure
    cause = None if failure is None else (type(failure), failure.code)
    return conn.events_received(), cause, conn.data_to_send()


def one_input(data: bytes) -> None:
    """Feed ``data`` to two identically configured connections, whole and in pieces."""
    reader = Reader(data)
    cfg = reader.byte()
    split = reader.byte()
    side = Side.CLIENT if cfg & 1 else Side.SERVER
    deflate = (cfg >> 1) & 7  # bit 0: negotiated; bits 1-2: context takeover
    max_size = _LIMITS[(cfg >> 4) & 3]
    defer = bool(cfg & 0x40)
    body = reader.rest()

    whole = _connection(side, max_size, deflate & 1 and deflate, defer)
    whole.receive_data(body)
    pieces = _connection(side, max_size, deflate & 1 and deflate, defer)
    for piece in chunks(body, split):
        pieces.receive_data(piece)
        # Buffered bytes are at most one incomplete frame header or control frame.
        assert len(pieces._buf) <= 14 + 125, len(pieces._buf)

    first = _outcome(whole)
    assert first == _outcome(pieces), (first, _outcome(pieces))
    events, cause, _ = first
    for event in events:
        if isinstance(event, TextMessage):
            assert len(event.data.encode("utf-8", "surrogatepass")) <= max_size
        elif isinstance(event, BinaryMessage):
            assert len(event.data) <= max_size
    if whole.failure is not None:
        assert cause is not None and cause[1] in (1002, 1007, 1009), cause
        assert whole.close_sent is not None and whole.close_sent[0] == cause[1]

    if len(body) >= 4:
        mask = body[:4]
        assert frames.apply_mask(body, mask) == frames.py_apply_mask(body, mask)


TARGET = Target("frames", one_input, max_len=8192)
