"""One parser: the bytes of a stream give the same outcome however they are cut.

``Connection.receive_data`` has a fast path for a call carrying exactly one small data
frame; it must apply every rule and limit the general (incremental) parser applies, so a
frame is accepted or rejected the same way whether it arrives whole or split. The
property test builds streams of valid and invalid frames (as a client sends them, masked,
with some unmasked, over the limits, with invalid UTF-8, reserved opcodes, RSV bits) and
compares two fresh server connections fed the same bytes, whole and in random cuts.

The Makefile also runs this module with ``TETHER_PURE_PYTHON=1`` (the pure-Python twin of
the masking accelerator).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.exceptions import PayloadTooBig
from tether.protocol import BinaryMessage, Connection, Event, Side, TextMessage, apply_mask

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class RawFrame:
    """A frame as it goes on the wire, valid or not."""

    fin: bool
    rsv: int  # the three RSV bits, 0-7
    opcode: int
    payload: bytes
    masked: bool
    mask: bytes
    length_form: int  # 0: shortest, 1: 16-bit, 2: 64-bit (RFC 6455 5.2 allows only 0)

    def encode(self) -> bytes:
        b0 = (0x80 if self.fin else 0) | (self.rsv << 4) | self.opcode
        m = 0x80 if self.masked else 0
        n = len(self.payload)
        if self.length_form == 0 and n < 126:
            header = struct.pack("!BB", b0, m | n)
        elif self.length_form <= 1 and n < 65536:
            header = struct.pack("!BBH", b0, m | 126, n)
        else:
            header = struct.pack("!BBQ", b0, m | 127, n)
        if not self.masked:
            return header + self.payload
        return header + self.mask + apply_mask(self.payload, self.mask)


VALID_TEXT = st.text(max_size=150).map(str.encode)
# Bytes that are not UTF-8 (a lone continuation byte, an overlong form, a surrogate), alone
# or inside valid text.
BAD_UTF8 = st.builds(
    lambda head, bad, tail: head + bad + tail,
    VALID_TEXT,
    st.sampled_from([b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\xf4\x90\x80\x80"]),
    st.binary(max_size=5),
)
payloads = st.one_of(VALID_TEXT, BAD_UTF8, st.binary(max_size=300))
CONTROL_OPCODES = [0x8, 0x9, 0xA]
RESERVED_OPCODES = [0x3, 0x7, 0xB, 0xF]


@st.composite
def raw_frames(draw: st.DrawFn) -> RawFrame:
    # Weighted so that many streams get past their first frames: most frames are valid.
    kind = draw(st.sampled_from(["data"] * 12 + ["control"] * 4 + ["reserved"]))
    if kind == "data":
        opcode = draw(st.sampled_from([0x1, 0x1, 0x2, 0x2, 0x0, 0x0, 0x0]))
        payload = draw(payloads)
    elif kind == "control":
        opcode = draw(st.sampled_from(CONTROL_OPCODES))
        if opcode == 0x8:
            code = draw(st.sampled_from([1000, 1001, 1002, 1005, 1016, 3000, 4999, 5000]))
            payload = draw(
                st.sampled_from([b"", b"\x03"])
                | st.builds(lambda r: code.to_bytes(2, "big") + r, VALID_TEXT | BAD_UTF8)
            )
        else:
            payload = draw(st.binary(max_size=130))
    else:
        opcode = draw(st.sampled_from(RESERVED_OPCODES))
        payload = draw(st.binary(max_size=20))
    return RawFrame(
        fin=draw(st.sampled_from([True, True, False])),
        rsv=draw(st.sampled_from([0] * 12 + [4, 2, 1])),
        opcode=opcode,
        payload=payload,
        masked=draw(st.sampled_from([True] * 19 + [False])),
        mask=draw(st.binary(min_size=4, max_size=4)),
        length_form=draw(st.sampled_from([0, 0, 0, 1, 2])),
    )


limits = st.none() | st.integers(min_value=0, max_value=400)


def outcome(conn: Connection, events: list[Event]) -> tuple[object, ...]:
    """Everything a caller can observe after feeding a stream."""
    failure = conn.failure
    return (
        events,
        # The type and the close code; the message may name an offset within a piece.
        None if failure is None else (type(failure), failure.code),
        conn.close_rcvd,
        conn.close_sent,
        conn.state,
        b"".join(conn.data_to_send()),
    )


def feed(conn: Connection, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for point in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        conn.receive_data(data[start:point])
        events.extend(conn.events_received())
        # As the asyncio layer does once it has handled the messages (defer_failures).
        conn.apply_pending_failure()
        start = point
    return events


def new_server(max_size: int | None, max_frame_size: int | None, defer: bool) -> Connection:
    conn = Connection(Side.SERVER, max_size=max_size, max_frame_size=max_frame_size)
    conn.defer_failures = defer
    return conn


@SETTINGS
@given(
    frames=st.lists(raw_frames(), min_size=1, max_size=8),
    max_size=limits,
    max_frame_size=limits,
    defer=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30),
)
def test_rfc6455_whole_and_split_streams_have_one_outcome(
    frames: list[RawFrame],
    max_size: int | None,
    max_frame_size: int | None,
    defer: bool,
    cuts: list[int],
) -> None:
    stream = b"".join(frame.encode() for frame in frames)
    whole = new_server(max_size, max_frame_size, defer)
    whole_events = feed(whole, stream, [])
    split = new_server(max_size, max_frame_size, defer)
    split_events = feed(split, stream, cuts)
    assert outcome(split, split_events) == outcome(whole, whole_events)


@SETTINGS
@given(
    frame=raw_frames(),
    max_size=limits,
    max_frame_size=limits,
    cut=st.integers(min_value=1, max_value=10**6),
)
def test_rfc6455_one_frame_whole_or_in_two_pieces(
    frame: RawFrame, max_size: int | None, max_frame_size: int | None, cut: int
) -> None:
    # One frame per receive_data call is the case the fast path takes: compare it with
    # the same frame in two pieces (which the general parser takes) on its own too.
    data = frame.encode()
    whole = new_server(max_size, max_frame_size, False)
    whole_events = feed(whole, data, [])
    split = new_server(max_size, max_frame_size, False)
    split_events = feed(split, data, [cut % len(data) or 1])
    assert outcome(split, split_events) == outcome(whole, whole_events)


# ---------------------------------------------------------------------------- regressions


def masked(opcode: int, payload: bytes) -> bytes:
    return RawFrame(True, 0, opcode, payload, True, b"\x01\x02\x03\x04", 0).encode()


def test_rfc6455_frame_over_max_frame_size_is_refused_whole_and_split() -> None:
    # Reported: with max_frame_size=64, a 100-byte frame was accepted when it came in one
    # receive_data call (the fast path checked only max_size) and refused when split.
    frame = masked(0x2, b"x" * 100)
    for pieces in ([frame], [frame[:3], frame[3:]]):
        conn = Connection(Side.SERVER, max_frame_size=64)
        for piece in pieces:
            conn.receive_data(piece)
        assert conn.events_received() == []
        assert isinstance(conn.failure, PayloadTooBig)
        assert conn.failure.code == 1009
        assert conn.data_to_send() == [b"\x88\x02\x03\xf1"]  # close 1009 (RFC 6455 7.4.1)


def test_rfc6455_frame_at_max_frame_size_is_accepted_whole_and_split() -> None:
    frame = masked(0x1, b"y" * 64)
    for pieces in ([frame], [frame[:7], frame[7:]]):
        conn = Connection(Side.SERVER, max_frame_size=64)
        for piece in pieces:
            conn.receive_data(piece)
        assert conn.events_received() == [TextMessage("y" * 64)]
        assert conn.failure is None


def test_rfc6455_max_size_still_applies_when_max_frame_size_is_larger() -> None:
    frame = masked(0x2, b"z" * 50)
    for pieces in ([frame], [frame[:1], frame[1:]]):
        conn = Connection(Side.SERVER, max_size=40, max_frame_size=100)
        for piece in pieces:
            conn.receive_data(piece)
        assert conn.events_received() == []
        assert isinstance(conn.failure, PayloadTooBig)
    ok = Connection(Side.SERVER, max_size=60, max_frame_size=100)
    ok.receive_data(frame)
    assert ok.events_received() == [BinaryMessage(b"z" * 50)]
