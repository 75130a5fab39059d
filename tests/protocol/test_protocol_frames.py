"""RFC 6455 sections 5, 7 and 8: framing, fragmentation, control frames, UTF-8, closing and
size limits, on the sans-I/O :class:`Connection` (bytes in, events out, no event loop)."""

from __future__ import annotations

import struct

import pytest

from tether.exceptions import InvalidState, PayloadTooBig, ProtocolError
from tether.protocol import (
    BinaryMessage,
    CloseReceived,
    Connection,
    Opcode,
    Ping,
    Pong,
    Side,
    State,
    TextMessage,
    apply_mask,
    serialize_frame,
)

MASK = b"\x37\xfa\x21\x3d"


def server() -> Connection:
    return Connection(Side.SERVER)


def client() -> Connection:
    return Connection(Side.CLIENT)


def cframe(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked frame, as a client sends it (``rsv``: the three RSV bits, 0-7)."""
    data = bytearray(serialize_frame(opcode, payload, fin=fin, mask=MASK))
    data[0] |= rsv << 4
    return bytes(data)


def sframe(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame, as a server sends it."""
    data = bytearray(serialize_frame(opcode, payload, fin=fin))
    data[0] |= rsv << 4
    return bytes(data)


def parse_frames(data: bytes) -> list[tuple[int, bool, bool, bytes]]:
    """Decode frames written by a Connection: (opcode, fin, rsv1, unmasked payload)."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        mask = None
        if b1 & 0x80:
            mask = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + length]
        pos += length
        if mask is not None:
            payload = apply_mask(payload, mask)
        frames.append((b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40), bytes(payload)))
    return frames


def sent_frames(conn: Connection) -> list[tuple[int, bool, bool, bytes]]:
    return parse_frames(b"".join(conn.data_to_send()))


def sent_close(conn: Connection) -> tuple[int | None, bytes]:
    """The close frame this connection queued: (code or None, reason bytes)."""
    closes = [f for f in sent_frames(conn) if f[0] == Opcode.CLOSE]
    assert len(closes) == 1, closes
    payload = closes[0][3]
    if not payload:
        return None, b""
    return int.from_bytes(payload[:2], "big"), payload[2:]


def assert_failed(conn: Connection, code: int) -> None:
    """The connection failed with ``code``: cause kept, close frame queued, state CLOSING."""
    assert isinstance(conn.failure, ProtocolError), conn.failure
    assert conn.failure.code == code, conn.failure
    assert conn.state is State.CLOSING
    assert sent_close(conn)[0] == code


# ---------------------------------------------------------------------------- 5.2 framing


@pytest.mark.parametrize(
    ("payload", "header_len"),
    [(b"", 2), (b"a" * 125, 2), (b"b" * 126, 4), (b"c" * 65535, 4), (b"d" * 65536, 10)],
)
def test_rfc6455_5_2_payload_length_7_16_64_bit_round_trip(payload: bytes, header_len: int) -> None:
    wire = serialize_frame(Opcode.BINARY, payload)
    assert len(wire) == header_len + len(payload)
    conn = client()
    conn.receive_data(wire)
    assert conn.events_received() == [BinaryMessage(payload)]
    assert conn.failure is None
    masked = serialize_frame(Opcode.BINARY, payload, mask=MASK)
    assert len(masked) == header_len + 4 + len(payload)
    srv = server()
    srv.receive_data(masked)
    assert srv.events_received() == [BinaryMessage(payload)]


def test_rfc6455_5_2_64_bit_length_with_msb_set_fails_1002() -> None:
    conn = client()
    conn.receive_data(b"\x82\x7f" + struct.pack("!Q", 1 << 63))
    assert_failed(conn, 1002)


def test_rfc6455_5_6_text_and_binary_opcodes() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.TEXT, "héllo".encode()) + cframe(Opcode.BINARY, b"\x00\xff"))
    assert conn.events_received() == [TextMessage("héllo"), BinaryMessage(b"\x00\xff")]


def test_rfc6455_5_5_2_ping_is_answered_with_pong_of_same_payload() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.PING, b"are you there"))
    assert conn.events_received() == [Ping(b"are you there")]
    assert sent_frames(conn) == [(Opcode.PONG, True, False, b"are you there")]


def test_rfc6455_5_5_2_client_pong_reply_is_masked() -> None:
    conn = client()
    conn.receive_data(sframe(Opcode.PING, b"x"))
    out = b"".join(conn.data_to_send())
    assert out[1] & 0x80
    assert parse_frames(out) == [(Opcode.PONG, True, False, b"x")]


def test_rfc6455_5_5_3_pong_is_reported_and_not_answered() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.PONG, b"p"))
    assert conn.events_received() == [Pong(b"p")]
    assert conn.data_to_send() == []


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_rfc6455_5_2_reserved_opcode_fails_1002(opcode: int) -> None:
    conn = server()
    conn.receive_data(cframe(opcode, b"x"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


@pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CLOSE])
def test_rfc6455_5_2_rsv_bits_without_extension_fail_1002(opcode: int, rsv: int) -> None:
    conn = server()
    conn.receive_data(cframe(opcode, b"x" if opcode != Opcode.CLOSE else b"\x03\xe8", rsv=rsv))
    assert [e for e in conn.events_received() if not isinstance(e, Ping)] == []
    assert_failed(conn, 1002)


def test_rfc6455_5_1_unmasked_client_frame_fails_1002_at_server() -> None:
    conn = server()
    conn.receive_data(sframe(Opcode.TEXT, b"hi"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


def test_rfc6455_5_1_masked_server_frame_fails_1002_at_client() -> None:
    conn = client()
    conn.receive_data(cframe(Opcode.TEXT, b"hi"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


def test_rfc6455_5_3_client_frames_are_masked_and_server_frames_are_not() -> None:
    c = client()
    c.send_message("hello")
    raw = b"".join(c.data_to_send())
    assert raw[1] & 0x80
    assert raw[6:] == apply_mask(b"hello", raw[2:6])
    s = server()
    s.receive_data(raw)
    assert s.events_received() == [TextMessage("hello")]
    s.send_message(b"bye")
    raw = b"".join(s.data_to_send())
    assert not raw[1] & 0x80
    c.receive_data(raw)
    assert c.events_received() == [BinaryMessage(b"bye")]


def test_rfc6455_5_3_masking_keys_vary_between_frames() -> None:
    conn = client()
    for _ in range(8):
        conn.send_message(b"same")
    raw = b"".join(conn.data_to_send())
    keys = {raw[i + 2 : i + 6] for i in range(0, len(raw), 10)}
    assert len(keys) > 1


def test_rfc6455_5_3_apply_mask_is_an_involution() -> None:
    data = bytes(range(256)) * 3 + b"tail"
    assert apply_mask(apply_mask(data, MASK), MASK) == data
    assert apply_mask(b"\x00\x00\x00\x00\x00", MASK) == MASK + MASK[:1]


# ---------------------------------------------------------------------------- 5.5 control


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_rfc6455_5_5_control_frame_over_125_bytes_fails_1002(opcode: int) -> None:
    payload = b"\x03\xe8" + b"r" * 124 if opcode == Opcode.CLOSE else b"p" * 126
    conn = server()
    conn.receive_data(cframe(opcode, payload))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


def test_rfc6455_5_5_control_frame_of_125_bytes_is_fine() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.PING, b"p" * 125))
    assert conn.events_received() == [Ping(b"p" * 125)]
    assert conn.failure is None


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_rfc6455_5_5_fragmented_control_frame_fails_1002(opcode: int) -> None:
    conn = server()
    conn.receive_data(cframe(opcode, b"", fin=False))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


# ---------------------------------------------------------------------------- 5.4 fragments


def test_rfc6455_5_4_fragmented_text_message_is_assembled() -> None:
    conn = server()
    conn.receive_data(
        cframe(Opcode.TEXT, b"Hel", fin=False)
        + cframe(Opcode.CONTINUATION, b"", fin=False)
        + cframe(Opcode.CONTINUATION, b"lo", fin=True)
    )
    assert conn.events_received() == [TextMessage("Hello")]


def test_rfc6455_5_4_fragmented_binary_message_is_assembled() -> None:
    conn = client()
    conn.receive_data(sframe(Opcode.BINARY, b"\x01", fin=False))
    assert conn.events_received() == []
    conn.receive_data(sframe(Opcode.CONTINUATION, b"\x02", fin=True))
    assert conn.events_received() == [BinaryMessage(b"\x01\x02")]


def test_rfc6455_5_4_continuation_without_start_fails_1002() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CONTINUATION, b"orphan"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_rfc6455_5_4_new_data_frame_during_fragmented_message_fails_1002(opcode: int) -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.TEXT, b"part", fin=False) + cframe(opcode, b"new"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


def test_rfc6455_5_4_ping_interleaved_in_fragmented_message_is_answered() -> None:
    conn = server()
    conn.receive_data(
        cframe(Opcode.TEXT, b"fir", fin=False)
        + cframe(Opcode.PING, b"mid")
        + cframe(Opcode.CONTINUATION, b"st", fin=True)
    )
    assert conn.events_received() == [Ping(b"mid"), TextMessage("first")]
    assert sent_frames(conn) == [(Opcode.PONG, True, False, b"mid")]
    assert conn.failure is None


def test_rfc6455_5_4_send_fragment_produces_continuation_frames() -> None:
    c = client()
    c.send_fragment("ab", fin=False)
    c.send_fragment("cd", fin=False)
    c.send_fragment("ef", fin=True)
    raw = b"".join(c.data_to_send())
    assert [(f[0], f[1]) for f in parse_frames(raw)] == [
        (Opcode.TEXT, False),
        (Opcode.CONTINUATION, False),
        (Opcode.CONTINUATION, True),
    ]
    s = server()
    s.receive_data(raw)
    assert s.events_received() == [TextMessage("abcdef")]


def test_rfc6455_5_4_send_fragment_refuses_mixed_types_and_interleaved_messages() -> None:
    c = client()
    c.send_fragment(b"ab", fin=False)
    with pytest.raises(TypeError):
        c.send_fragment("cd", fin=True)
    with pytest.raises(InvalidState):
        c.send_message("interleaved")


# ---------------------------------------------------------------------------- 8.1 UTF-8


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xce", b"\xce\xba\xe1"],
)
def test_rfc6455_8_1_invalid_utf8_text_fails_1007(payload: bytes) -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.TEXT, payload))
    assert conn.events_received() == []
    assert_failed(conn, 1007)


def test_rfc6455_8_1_invalid_utf8_in_fragmented_text_fails_1007() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.TEXT, b"ok", fin=False) + cframe(Opcode.CONTINUATION, b"\xff"))
    assert conn.events_received() == []
    assert_failed(conn, 1007)


def test_rfc6455_8_1_invalid_utf8_is_fine_in_binary() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.BINARY, b"\xff\xfe"))
    assert conn.events_received() == [BinaryMessage(b"\xff\xfe")]


def test_rfc6455_8_1_fail_fast_on_invalid_first_fragment() -> None:
    conn = server()
    # Only the first (non-final) fragment has arrived: it is already known to be invalid.
    conn.receive_data(cframe(Opcode.TEXT, b"hello \xff world", fin=False))
    assert_failed(conn, 1007)


def test_rfc6455_8_1_fail_fast_inside_a_partly_received_frame() -> None:
    payload = b"valid text " + b"\xc3\x28" + b"x" * 1000
    wire = cframe(Opcode.TEXT, payload)
    conn = server()
    header = 2 + 2 + 4  # 16-bit length and mask
    conn.receive_data(wire[: header + 20])  # the bad bytes are in, most of the frame is not
    assert_failed(conn, 1007)


def test_rfc6455_8_1_partly_received_valid_frame_does_not_fail() -> None:
    payload = "é".encode() * 600
    wire = cframe(Opcode.TEXT, payload)
    conn = server()
    conn.receive_data(wire[:9])  # cuts a 2-byte sequence after its first byte
    assert conn.failure is None
    conn.receive_data(wire[9:])
    assert conn.events_received() == [TextMessage("é" * 600)]


def test_rfc6455_8_1_code_point_split_across_fragments_is_valid() -> None:
    euro = "€".encode()  # 3 bytes
    conn = server()
    conn.receive_data(
        cframe(Opcode.TEXT, b"a" + euro[:1], fin=False)
        + cframe(Opcode.CONTINUATION, euro[1:2], fin=False)
        + cframe(Opcode.CONTINUATION, euro[2:] + b"b", fin=True)
    )
    assert conn.events_received() == [TextMessage("a€b")]
    assert conn.failure is None


def test_rfc6455_8_1_message_ending_in_a_truncated_code_point_fails_1007() -> None:
    conn = server()
    conn.receive_data(
        cframe(Opcode.TEXT, b"a", fin=False) + cframe(Opcode.CONTINUATION, "€".encode()[:2])
    )
    assert_failed(conn, 1007)


# ---------------------------------------------------------------------------- 5.5.1 closing


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
def test_rfc6455_7_4_invalid_close_code_on_wire_fails_1002(code: int) -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CLOSE, struct.pack("!H", code)))
    assert not any(isinstance(e, CloseReceived) for e in conn.events_received())
    assert_failed(conn, 1002)


def test_rfc6455_5_5_1_close_code_1005_is_invalid_on_wire() -> None:
    conn = client()
    conn.receive_data(sframe(Opcode.CLOSE, struct.pack("!H", 1005)))
    assert_failed(conn, 1002)


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_rfc6455_5_5_1_valid_close_code_is_reported_and_echoed(code: int) -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CLOSE, struct.pack("!H", code) + b"bye"))
    assert conn.events_received() == [CloseReceived(code, "bye")]
    assert conn.failure is None
    assert sent_close(conn)[0] == code
    assert conn.state is State.CLOSING
    assert conn.close_code == code
    assert conn.close_reason == "bye"


def test_rfc6455_5_5_1_empty_close_is_reported_as_1005_and_echoed_empty() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CLOSE))
    assert conn.events_received() == [CloseReceived(1005, "")]
    assert sent_close(conn) == (None, b"")


def test_rfc6455_5_5_1_one_byte_close_payload_fails_1002() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CLOSE, b"\x03"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)


def test_rfc6455_5_5_1_invalid_utf8_close_reason_fails_1007() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CLOSE, struct.pack("!H", 1000) + b"\xff\xfe"))
    assert conn.events_received() == []
    assert_failed(conn, 1007)


def test_rfc6455_1_4_nothing_is_processed_after_a_close_frame() -> None:
    conn = server()
    conn.receive_data(
        cframe(Opcode.CLOSE, struct.pack("!H", 1000))
        + cframe(Opcode.TEXT, b"late")
        + cframe(Opcode.PING, b"late")
    )
    assert conn.events_received() == [CloseReceived(1000, "")]
    conn.receive_data(cframe(Opcode.TEXT, b"later") + b"\xff\xff garbage")
    assert conn.events_received() == []
    assert sent_close(conn)[0] == 1000  # the echo, and no pong
    assert conn.failure is None


def test_rfc6455_7_1_7_nothing_is_processed_after_a_failure() -> None:
    conn = server()
    conn.receive_data(cframe(0x3) + cframe(Opcode.TEXT, b"late"))
    conn.receive_data(cframe(Opcode.PING, b"late"))
    assert conn.events_received() == []
    assert_failed(conn, 1002)
    assert conn.data_to_send() == []


def test_rfc6455_7_1_7_failure_makes_sending_a_local_error() -> None:
    conn = server()
    conn.receive_data(cframe(0x3))
    with pytest.raises(InvalidState):
        conn.send_message("x")
    with pytest.raises(InvalidState):
        conn.send_ping()


def test_rfc6455_7_1_1_server_closes_transport_after_the_closing_handshake() -> None:
    conn = server()
    conn.send_close(1000, "done")
    assert conn.state is State.CLOSING
    assert sent_close(conn) == (1000, b"done")
    assert not conn.should_close_transport  # waits for the client's close frame
    conn.receive_data(cframe(Opcode.CLOSE, struct.pack("!H", 1000)))
    assert conn.events_received() == [CloseReceived(1000, "")]
    assert conn.data_to_send() == []  # no second close frame
    assert conn.should_close_transport


def test_rfc6455_7_1_1_server_closes_transport_after_echoing_a_close() -> None:
    conn = server()
    conn.receive_data(cframe(Opcode.CLOSE, struct.pack("!H", 1001)))
    assert conn.should_close_transport


def test_rfc6455_7_1_1_server_closes_transport_after_a_failure() -> None:
    conn = server()
    conn.receive_data(cframe(0xB))
    assert conn.should_close_transport


def test_rfc6455_7_1_1_client_waits_for_eof_from_the_server() -> None:
    conn = client()
    conn.send_close(1000)
    conn.receive_data(sframe(Opcode.CLOSE, struct.pack("!H", 1000)))
    assert conn.events_received() == [CloseReceived(1000, "")]
    assert not conn.should_close_transport
    conn.receive_eof()
    assert conn.should_close_transport
    assert conn.state is State.CLOSED


def test_rfc6455_7_1_1_client_waits_for_eof_even_after_a_failure() -> None:
    conn = client()
    conn.receive_data(sframe(0x3))
    assert conn.failure is not None
    assert not conn.should_close_transport
    conn.receive_eof()
    assert conn.should_close_transport


def test_rfc6455_7_1_5_close_code_is_1006_without_a_close_frame() -> None:
    conn = client()
    conn.receive_eof()
    assert conn.close_code == 1006
    assert conn.state is State.CLOSED


def test_rfc6455_7_1_2_send_close_validates_arguments() -> None:
    conn = client()
    for code in (999, 1005, 1006, 1015, 5000):
        with pytest.raises(ValueError):
            conn.send_close(code)
    with pytest.raises(ValueError):
        conn.send_close(1000, "r" * 124)
    conn.send_close(1000, "r" * 123)
    assert sent_close(conn) == (1000, b"r" * 123)


def test_rfc6455_7_1_2_send_close_twice_sends_one_frame() -> None:
    conn = client()
    conn.send_close(1000)
    conn.send_close(1001)
    assert sent_close(conn)[0] == 1000
    with pytest.raises(InvalidState):
        conn.send_message("after close")


# ---------------------------------------------------------------------------- 10.4 limits


def test_rfc6455_10_4_oversized_frame_fails_1009_at_the_header() -> None:
    conn = server()
    conn.max_size = conn.max_frame_size = 1000
    wire = cframe(Opcode.BINARY, b"x" * 5000)
    conn.receive_data(wire[:8])  # only the header: the length alone is enough
    assert isinstance(conn.failure, PayloadTooBig)
    assert_failed(conn, 1009)


def test_rfc6455_10_4_oversized_frame_with_64_bit_length_fails_1009_at_the_header() -> None:
    conn = Connection(Side.SERVER, max_size=2**20)
    header = b"\x82" + bytes([0x80 | 127]) + struct.pack("!Q", 2**40) + MASK
    conn.receive_data(header)
    assert_failed(conn, 1009)


def test_rfc6455_10_4_message_at_max_size_is_accepted() -> None:
    conn = Connection(Side.SERVER, max_size=1000)
    conn.receive_data(cframe(Opcode.BINARY, b"x" * 1000))
    assert conn.events_received() == [BinaryMessage(b"x" * 1000)]


def test_rfc6455_10_4_fragmented_message_over_max_size_fails_1009() -> None:
    conn = Connection(Side.SERVER, max_size=1000)
    conn.receive_data(cframe(Opcode.BINARY, b"x" * 600, fin=False))
    assert conn.failure is None
    conn.receive_data(cframe(Opcode.CONTINUATION, b"x" * 600)[:8])
    assert conn.events_received() == []
    assert_failed(conn, 1009)


def test_rfc6455_10_4_fragmented_text_over_max_size_fails_1009() -> None:
    conn = Connection(Side.SERVER, max_size=10)
    conn.receive_data(
        cframe(Opcode.TEXT, b"abcdef", fin=False) + cframe(Opcode.CONTINUATION, b"ghijk")
    )
    assert conn.events_received() == []
    assert_failed(conn, 1009)


def test_rfc6455_10_4_max_size_none_means_no_limit() -> None:
    conn = Connection(Side.CLIENT, max_size=None)
    conn.receive_data(sframe(Opcode.BINARY, b"x" * (3 * 2**20)))
    assert conn.events_received() == [BinaryMessage(b"x" * (3 * 2**20))]


def test_rfc6455_5_5_2_ping_payload_limit_is_a_local_error() -> None:
    conn = client()
    with pytest.raises(ValueError):
        conn.send_ping(b"x" * 126)
    with pytest.raises(ValueError):
        conn.send_pong(b"x" * 126)
