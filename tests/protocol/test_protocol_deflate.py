"""RFC 7692 permessage-deflate: negotiation, the codec, and compressed messages through a
client/server pair of sans-I/O connections."""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest

from tether.exceptions import NegotiationError, ProtocolError
from tether.protocol import (
    BinaryMessage,
    Connection,
    DeflateOptions,
    Headers,
    Opcode,
    PerMessageDeflate,
    Request,
    Response,
    Side,
    State,
    TextMessage,
    accept_key,
    build_client_request,
    check_client_response,
    serialize_frame,
    server_accept,
)
from tether.protocol.deflate import (
    client_accept_response,
    client_offer,
    parse_extensions,
    server_accept_offers,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x01\x02\x03\x04"


def negotiate(offer: str, options: DeflateOptions | None = None) -> PerMessageDeflate | None:
    return server_accept_offers(parse_extensions([offer]), options or DeflateOptions())


def params_of(codec: PerMessageDeflate | None) -> list[str]:
    assert codec is not None
    return [p.strip() for p in codec.params.split(";")]


def pair(
    client_options: DeflateOptions | None = None,
    server_options: DeflateOptions | None = None,
    **conn_kwargs: Any,
) -> tuple[Connection, Connection]:
    """Negotiate through the real handshake functions and build a client/server pair."""
    client_options = client_options or DeflateOptions()
    server_options = server_options or DeflateOptions()
    request = build_client_request("h", "/", KEY, deflate=client_options)
    accepted = server_accept(request, deflate=server_options)
    assert accepted.deflate is not None
    _, client_codec = check_client_response(accepted.response, KEY, deflate=client_options)
    assert client_codec is not None
    c = Connection(Side.CLIENT, deflate=client_codec, **conn_kwargs)
    s = Connection(Side.SERVER, deflate=accepted.deflate, **conn_kwargs)
    return c, s


def transfer(src: Connection, dst: Connection) -> bytes:
    data = b"".join(src.data_to_send())
    dst.receive_data(data)
    return data


def first_byte_flags(wire: bytes) -> tuple[bool, int]:
    """(RSV1 set, opcode) of the first frame in ``wire``."""
    return bool(wire[0] & 0x40), wire[0] & 0x0F


def raw_deflate(data: bytes, wbits: int = 15) -> bytes:
    enc = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = enc.compress(data) + enc.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# ---------------------------------------------------------------------------- negotiation


def test_rfc7692_5_plain_offer_is_accepted() -> None:
    codec = negotiate("permessage-deflate")
    assert params_of(codec) == ["permessage-deflate"]


def test_rfc7692_7_1_1_1_server_no_context_takeover_is_accepted() -> None:
    codec = negotiate("permessage-deflate; server_no_context_takeover")
    assert "server_no_context_takeover" in params_of(codec)


def test_rfc7692_7_1_1_2_client_no_context_takeover_is_accepted() -> None:
    codec = negotiate("permessage-deflate; client_no_context_takeover")
    assert "client_no_context_takeover" in params_of(codec)


def test_rfc7692_7_1_1_server_may_require_no_context_takeover_on_its_own() -> None:
    options = DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True)
    codec = negotiate("permessage-deflate", options)
    assert {"server_no_context_takeover", "client_no_context_takeover"} <= set(params_of(codec))


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
def test_rfc7692_7_1_2_1_server_max_window_bits_is_honoured(bits: int) -> None:
    codec = negotiate(f"permessage-deflate; server_max_window_bits={bits}")
    assert f"server_max_window_bits={bits}" in params_of(codec)
    assert codec is not None
    # 8 bits: zlib cannot produce such a stream, so the server never compresses.
    assert codec.can_compress is (bits >= 9)


def test_rfc7692_7_1_2_1_server_max_window_bits_is_lowered_to_the_servers_limit() -> None:
    codec = negotiate(
        "permessage-deflate; server_max_window_bits=14",
        DeflateOptions(server_max_window_bits=10),
    )
    assert "server_max_window_bits=10" in params_of(codec)


@pytest.mark.parametrize(
    "param",
    [
        "server_max_window_bits=7",
        "server_max_window_bits=16",
        "server_max_window_bits=08",
        "server_max_window_bits=010",
        "server_max_window_bits",
        "server_max_window_bits=abc",
        "client_max_window_bits=7",
        "client_max_window_bits=16",
        "client_max_window_bits=09",
        "server_no_context_takeover=1",
        "unknown_param",
        "x=1",
        "server_no_context_takeover; server_no_context_takeover",
    ],
)
def test_rfc7692_7_1_invalid_or_unknown_parameter_declines_the_offer(param: str) -> None:
    assert negotiate(f"permessage-deflate; {param}") is None


def test_rfc7692_7_1_2_2_client_max_window_bits_without_value_is_allowed() -> None:
    codec = negotiate("permessage-deflate; client_max_window_bits")
    assert params_of(codec) == ["permessage-deflate"]
    codec = negotiate(
        "permessage-deflate; client_max_window_bits", DeflateOptions(client_max_window_bits=11)
    )
    assert "client_max_window_bits=11" in params_of(codec)


def test_rfc7692_7_1_2_2_client_max_window_bits_is_lowered_to_the_servers_limit() -> None:
    codec = negotiate(
        "permessage-deflate; client_max_window_bits=13", DeflateOptions(client_max_window_bits=9)
    )
    assert "client_max_window_bits=9" in params_of(codec)


def test_rfc7692_5_first_acceptable_of_several_offers_is_chosen() -> None:
    offer = (
        "x-webkit-deflate-frame, "
        "permessage-deflate; server_max_window_bits=99, "
        "permessage-deflate; client_no_context_takeover, "
        "permessage-deflate"
    )
    codec = negotiate(offer)
    assert params_of(codec) == ["permessage-deflate", "client_no_context_takeover"]


def test_rfc7692_5_offers_in_several_headers_are_considered_in_order() -> None:
    offers = parse_extensions(["foo", "permessage-deflate; server_no_context_takeover"])
    codec = server_accept_offers(offers, DeflateOptions())
    assert "server_no_context_takeover" in params_of(codec)


def test_rfc7692_5_no_acceptable_offer_means_no_extension_header() -> None:
    request = Request(
        "GET",
        "/",
        Headers(
            [
                ("Host", "h"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", KEY),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Extensions", "permessage-deflate; bogus"),
            ]
        ),
    )
    accepted = server_accept(request, deflate=DeflateOptions())
    assert accepted.deflate is None
    headers = accepted.response.headers
    assert isinstance(headers, Headers)
    assert "Sec-WebSocket-Extensions" not in headers


def test_rfc7692_9_1_quoted_parameter_value_is_accepted() -> None:
    codec = negotiate('permessage-deflate; server_max_window_bits="10"')
    assert "server_max_window_bits=10" in params_of(codec)


def test_rfc7692_5_server_without_compression_ignores_the_offer() -> None:
    request = build_client_request("h", "/", KEY, deflate=DeflateOptions())
    accepted = server_accept(request, deflate=None)
    assert accepted.deflate is None


def test_rfc7692_5_client_offer_lists_every_option() -> None:
    offer = client_offer(
        DeflateOptions(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=11,
        )
    )
    (name, params), *_ = parse_extensions([offer])
    assert name == "permessage-deflate"
    assert dict(params) == {
        "server_no_context_takeover": None,
        "client_no_context_takeover": None,
        "server_max_window_bits": "10",
        "client_max_window_bits": "11",
    }


# ---------------------------------------------------------------------------- client side


def test_rfc7692_5_client_accepts_a_matching_response() -> None:
    codec = client_accept_response(["permessage-deflate"], DeflateOptions())
    assert codec is not None
    assert codec.can_compress


def test_rfc7692_5_client_refuses_another_extension() -> None:
    with pytest.raises(NegotiationError):
        client_accept_response(["x-other"], DeflateOptions())


def test_rfc7692_5_client_refuses_two_accepted_extensions() -> None:
    with pytest.raises(NegotiationError):
        client_accept_response(["permessage-deflate, permessage-deflate"], DeflateOptions())


def test_rfc7692_7_1_2_2_default_offer_lets_the_server_pick_the_client_window() -> None:
    # The default offer carries the bare parameter, so the server may pick 8-15.
    assert "client_max_window_bits" in client_offer(DeflateOptions()).split("; ")
    codec = client_accept_response(
        ["permessage-deflate; client_max_window_bits=10"], DeflateOptions()
    )
    assert codec is not None and codec.can_compress
    # zlib cannot compress with an 8-bit window: such a connection sends uncompressed.
    codec8 = client_accept_response(
        ["permessage-deflate; client_max_window_bits=8"], DeflateOptions()
    )
    assert codec8 is not None and not codec8.can_compress
    with pytest.raises(NegotiationError):
        client_accept_response(["permessage-deflate; client_max_window_bits=16"], DeflateOptions())


def test_rfc7692_7_1_2_2_client_refuses_a_larger_client_window_than_offered() -> None:
    with pytest.raises(NegotiationError):
        client_accept_response(
            ["permessage-deflate; client_max_window_bits=12"],
            DeflateOptions(client_max_window_bits=10),
        )


def test_rfc7692_7_1_2_1_client_refuses_a_larger_server_window_than_offered() -> None:
    with pytest.raises(NegotiationError):
        client_accept_response(
            ["permessage-deflate; server_max_window_bits=12"],
            DeflateOptions(server_max_window_bits=10),
        )


def test_rfc7692_7_1_1_1_client_refuses_a_server_ignoring_server_no_context_takeover() -> None:
    with pytest.raises(NegotiationError):
        client_accept_response(
            ["permessage-deflate"], DeflateOptions(server_no_context_takeover=True)
        )


@pytest.mark.parametrize(
    "value",
    [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; unknown",
        "permessage-deflate; client_no_context_takeover=yes",
    ],
)
def test_rfc7692_7_1_client_refuses_a_malformed_response(value: str) -> None:
    with pytest.raises(NegotiationError):
        client_accept_response([value], DeflateOptions(client_max_window_bits=15))


def test_rfc7692_7_1_2_2_client_window_of_8_means_the_client_never_compresses() -> None:
    codec = client_accept_response(
        ["permessage-deflate; client_max_window_bits=8"], DeflateOptions(client_max_window_bits=9)
    )
    assert codec is not None
    assert not codec.can_compress


def test_rfc7692_5_check_client_response_returns_the_codec() -> None:
    response = Response(
        101,
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(KEY)),
            ("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover"),
        ],
    )
    _, codec = check_client_response(response, KEY, deflate=DeflateOptions())
    assert codec is not None


@pytest.mark.parametrize("bits", [7, 8, 16])
def test_rfc7692_deflate_options_refuse_windows_zlib_cannot_use(bits: int) -> None:
    with pytest.raises(ValueError):
        DeflateOptions(server_max_window_bits=bits)


# ---------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    "options",
    [
        DeflateOptions(),
        DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
        DeflateOptions(server_max_window_bits=9, client_max_window_bits=9),
        DeflateOptions(server_max_window_bits=12, client_no_context_takeover=True),
    ],
    ids=["takeover", "no-takeover", "window-9", "mixed"],
)
def test_rfc7692_6_compressed_messages_round_trip_both_ways(options: DeflateOptions) -> None:
    c, s = pair(options, options)
    texts = ["The quick brown fox " * 40, "jumps over " * 60, "The quick brown fox " * 40]
    sizes = []
    for text in texts:
        c.send_message(text)
        wire = transfer(c, s)
        assert first_byte_flags(wire) == (True, Opcode.TEXT)
        sizes.append(len(wire))
        assert s.events_received() == [TextMessage(text)]
        s.send_message(text.encode())
        wire = transfer(s, c)
        assert first_byte_flags(wire) == (True, Opcode.BINARY)
        assert len(wire) < len(text)
        assert c.events_received() == [BinaryMessage(text.encode())]
    assert c.failure is None and s.failure is None


def test_rfc7692_7_2_3_2_context_takeover_shrinks_a_repeated_message() -> None:
    c, s = pair()
    message = os.urandom(600).hex()  # poorly compressible on its own
    c.send_message(message)
    first = transfer(c, s)
    c.send_message(message)
    second = transfer(c, s)
    assert s.events_received() == [TextMessage(message), TextMessage(message)]
    assert len(second) < len(first) // 4


def test_rfc7692_7_1_1_no_context_takeover_compresses_each_message_alone() -> None:
    options = DeflateOptions(client_no_context_takeover=True, server_no_context_takeover=True)
    c, s = pair(options, options)
    message = os.urandom(600).hex()
    c.send_message(message)
    first = transfer(c, s)
    c.send_message(message)
    second = transfer(c, s)
    assert s.events_received() == [TextMessage(message), TextMessage(message)]
    assert len(second) == len(first)


def test_rfc7692_threshold_small_messages_are_sent_uncompressed() -> None:
    c, s = pair(DeflateOptions(threshold=100))
    c.send_message("small")
    wire = transfer(c, s)
    assert first_byte_flags(wire) == (False, Opcode.TEXT)
    c.send_message("b" * 100)
    wire = transfer(c, s)
    assert first_byte_flags(wire) == (True, Opcode.TEXT)
    assert s.events_received() == [TextMessage("small"), TextMessage("b" * 100)]


def test_rfc7692_compress_flag_overrides_the_threshold_per_message() -> None:
    c, s = pair()
    c.send_message("tiny", compress=True)
    assert first_byte_flags(transfer(c, s)) == (True, Opcode.TEXT)
    c.send_message("x" * 5000, compress=False)
    wire = transfer(c, s)
    assert first_byte_flags(wire) == (False, Opcode.TEXT)
    assert len(wire) > 5000
    assert s.events_received() == [TextMessage("tiny"), TextMessage("x" * 5000)]


def test_rfc7692_7_2_3_6_empty_compressed_message() -> None:
    c, s = pair()
    c.send_message(b"", compress=True)
    wire = transfer(c, s)
    assert first_byte_flags(wire) == (True, Opcode.BINARY)
    s.send_message("", compress=True)
    transfer(s, c)
    assert s.events_received() == [BinaryMessage(b"")]
    assert c.events_received() == [TextMessage("")]


def test_rfc7692_6_1_compressed_fragmented_message_round_trips() -> None:
    c, s = pair()
    c.send_fragment("alpha " * 50, fin=False)
    c.send_fragment("beta " * 50, fin=False)
    c.send_fragment("gamma", fin=True)
    wire = transfer(c, s)
    assert first_byte_flags(wire) == (True, Opcode.TEXT)
    assert s.events_received() == [TextMessage("alpha " * 50 + "beta " * 50 + "gamma")]


def test_rfc7692_6_1_rsv1_on_a_continuation_frame_fails_1002() -> None:
    _, s = pair()
    first = bytearray(serialize_frame(Opcode.TEXT, raw_deflate(b"abc"), fin=False, mask=MASK))
    first[0] |= 0x40
    cont = bytearray(serialize_frame(Opcode.CONTINUATION, b"", mask=MASK))
    cont[0] |= 0x40
    s.receive_data(bytes(first) + bytes(cont))
    assert isinstance(s.failure, ProtocolError)
    assert s.failure.code == 1002


def test_rfc7692_6_rsv2_fails_even_with_deflate() -> None:
    _, s = pair()
    frame = bytearray(serialize_frame(Opcode.TEXT, b"abc", mask=MASK))
    frame[0] |= 0x20
    s.receive_data(bytes(frame))
    assert s.failure is not None and s.failure.code == 1002


def test_rfc7692_6_invalid_deflate_data_fails_the_connection() -> None:
    _, s = pair()
    frame = bytearray(serialize_frame(Opcode.BINARY, b"\xff\xff\xff\xff\xff", mask=MASK))
    frame[0] |= 0x40
    s.receive_data(bytes(frame))
    assert s.events_received() == []
    assert isinstance(s.failure, ProtocolError)
    assert s.failure.code in (1002, 1007)
    assert s.state is State.CLOSING


def test_rfc7692_8_1_compressed_invalid_utf8_fails_1007() -> None:
    _, s = pair()
    frame = bytearray(serialize_frame(Opcode.TEXT, raw_deflate(b"ok \xff\xfe"), mask=MASK))
    frame[0] |= 0x40
    s.receive_data(bytes(frame))
    assert s.events_received() == []
    assert s.failure is not None and s.failure.code == 1007


# ---------------------------------------------------------------------------- limits


class CountingDecoder:
    """Wraps a zlib decompressor and counts the bytes it produced."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.produced = 0

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self.inner.decompress(data, max_length)
        self.produced += len(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_rfc7692_deflate_bomb_fails_1009_without_inflating_everything() -> None:
    max_size = 64 * 1024
    _, s = pair(max_size=max_size)
    assert s.deflate is not None
    counter = CountingDecoder(s.deflate._decoder)
    s.deflate._decoder = counter  # type: ignore[assignment]
    bomb = raw_deflate(b"\x00" * (16 * 2**20))  # 16 MiB of zeros in about 16 KiB
    assert len(bomb) < max_size
    frame = bytearray(serialize_frame(Opcode.BINARY, bomb, mask=MASK))
    frame[0] |= 0x40
    s.receive_data(bytes(frame))
    assert s.events_received() == []
    assert s.failure is not None and s.failure.code == 1009
    assert counter.produced <= 2 * max_size


def test_rfc7692_compressed_message_over_max_size_fails_1009() -> None:
    c, s = pair(max_size=1000)
    c.send_message("a" * 1001)
    transfer(c, s)
    assert s.events_received() == []
    assert s.failure is not None and s.failure.code == 1009


def test_rfc7692_compressed_message_at_max_size_is_accepted() -> None:
    c, s = pair(max_size=1000)
    c.send_message("a" * 1000)
    transfer(c, s)
    assert s.events_received() == [TextMessage("a" * 1000)]


def test_rfc7692_compressed_fragmented_message_over_max_size_fails_1009() -> None:
    c, s = pair(max_size=1000)
    for _ in range(3):
        c.send_fragment(b"z" * 400, fin=False)
    c.send_fragment(b"z", fin=True)
    transfer(c, s)
    assert s.events_received() == []
    assert s.failure is not None and s.failure.code == 1009


def test_rfc7692_compressed_message_with_max_size_none_is_received() -> None:
    c, s = pair(max_size=None)
    c.send_message("unbounded " * 100)
    transfer(c, s)
    assert s.failure is None
    assert s.events_received() == [TextMessage("unbounded " * 100)]
