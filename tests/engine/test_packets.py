"""Engine.IO v4 packets: every example of the engine.io-protocol README, the packets the
official test suite sends, malformed input, and round-trip properties.

Test names follow the README sections: "Protocol", "Handshake", "Heartbeat", "Upgrade",
"Message", "Packet encoding" (HTTP long-polling, WebSocket), "History".
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.engine.packets import (
    DEFAULT_MAX_PAYLOAD_PACKETS,
    PROBE,
    PROTOCOL_VERSION,
    SEPARATOR,
    EnginePacketError,
    OpenPayload,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)

# --------------------------------------------------------------------------- Protocol


def test_protocol_version_is_4() -> None:
    assert PROTOCOL_VERSION == 4


@pytest.mark.parametrize(
    ("packet_type", "value"),
    [
        (PacketType.OPEN, 0),
        (PacketType.CLOSE, 1),
        (PacketType.PING, 2),
        (PacketType.PONG, 3),
        (PacketType.MESSAGE, 4),
        (PacketType.UPGRADE, 5),
        (PacketType.NOOP, 6),
    ],
)
def test_protocol_packet_type_ids(packet_type: PacketType, value: int) -> None:
    assert packet_type == value
    assert encode_packet(Packet(packet_type), binary_supported=True) == str(value)
    assert decode_packet(str(value)).type is packet_type


# --------------------------------------------------------------------------- Handshake

README_HANDSHAKE = """{
  "sid": "lv_VI97HAXpY6yYWAAAC",
  "upgrades": ["websocket"],
  "pingInterval": 25000,
  "pingTimeout": 20000,
  "maxPayload": 1000000
}"""


def test_handshake_readme_example_parses() -> None:
    info = OpenPayload.from_json(README_HANDSHAKE)
    assert info == OpenPayload(
        sid="lv_VI97HAXpY6yYWAAAC",
        upgrades=("websocket",),
        ping_interval=25000,
        ping_timeout=20000,
        max_payload=1000000,
    )


def test_handshake_encoding_matches_sample_session() -> None:
    # socket.io-protocol README, "Sample session", request n°1.
    info = OpenPayload("lv_VI97HAXpY6yYWAAAC", ("websocket",), 25000, 5000, 1000000)
    assert encode_packet(info.to_packet(), binary_supported=False) == (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
        '"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}'
    )


def test_handshake_has_the_five_keys_the_test_suite_checks() -> None:
    # test-suite.js "successfully opens a session": all.keys(sid, upgrades, pingInterval,
    # pingTimeout, maxPayload); upgrades is ["websocket"] on polling, [] on WebSocket.
    for upgrades in (("websocket",), ()):
        text = OpenPayload("abc", upgrades, 300, 200, 1000000).to_json()
        value = json.loads(text)
        assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert value["upgrades"] == list(upgrades)
        assert value["pingInterval"] == 300
        assert value["pingTimeout"] == 200
        assert value["maxPayload"] == 1000000


def test_handshake_round_trip_through_open_packet() -> None:
    info = OpenPayload("s1", (), 300, 200, 1000000)
    packet = decode_packet(encode_packet(info.to_packet(), binary_supported=True))
    assert packet.type is PacketType.OPEN
    assert isinstance(packet.data, str)
    assert OpenPayload.from_json(packet.data) == info


def test_handshake_without_max_payload_from_older_servers() -> None:
    info = OpenPayload.from_json('{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":2}')
    assert info.max_payload is None
    assert "maxPayload" not in info.to_json()


def test_handshake_ignores_unknown_keys() -> None:
    text = '{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3,"x":1}'
    assert OpenPayload.from_json(text).max_payload == 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '"sid"',
        '{"upgrades":[],"pingInterval":1,"pingTimeout":2}',
        '{"sid":"","upgrades":[],"pingInterval":1,"pingTimeout":2}',
        '{"sid":1,"upgrades":[],"pingInterval":1,"pingTimeout":2}',
        '{"sid":"a","upgrades":"websocket","pingInterval":1,"pingTimeout":2}',
        '{"sid":"a","upgrades":[1],"pingInterval":1,"pingTimeout":2}',
        '{"sid":"a","upgrades":[],"pingInterval":"1","pingTimeout":2}',
        '{"sid":"a","upgrades":[],"pingInterval":1.5,"pingTimeout":2}',
        '{"sid":"a","upgrades":[],"pingInterval":true,"pingTimeout":2}',
        '{"sid":"a","upgrades":[],"pingInterval":1}',
        '{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":-2}',
        '{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":"x"}',
        "[" * 100000,
    ],
)
def test_handshake_malformed_open_payload(text: str) -> None:
    with pytest.raises(EnginePacketError):
        OpenPayload.from_json(text)


# --------------------------------------------------------------------------- Heartbeat


def test_heartbeat_ping_and_pong() -> None:
    assert encode_packet(Packet(PacketType.PING), binary_supported=True) == "2"
    assert encode_packet(Packet(PacketType.PONG), binary_supported=True) == "3"
    assert decode_packet("2") == Packet(PacketType.PING)
    assert decode_packet("3") == Packet(PacketType.PONG)


# --------------------------------------------------------------------------- Upgrade


def test_upgrade_probe_sequence() -> None:
    assert decode_packet("2probe") == Packet(PacketType.PING, PROBE)
    assert encode_packet(Packet(PacketType.PONG, PROBE), binary_supported=True) == "3probe"
    assert decode_packet("5") == Packet(PacketType.UPGRADE)
    assert encode_packet(Packet(PacketType.NOOP), binary_supported=False) == "6"


# --------------------------------------------------------------------------- Message


def test_message_text() -> None:
    assert decode_packet("4hello") == Packet(PacketType.MESSAGE, "hello")
    assert encode_packet(Packet(PacketType.MESSAGE, "hello"), binary_supported=True) == "4hello"


def test_message_empty_text_is_empty_string() -> None:
    assert decode_packet("4") == Packet(PacketType.MESSAGE, "")
    assert encode_packet(Packet(PacketType.MESSAGE, ""), binary_supported=True) == "4"


def test_message_close_packet() -> None:
    # test-suite.js "forcefully closes the session": the client sends "1".
    assert decode_packet("1") == Packet(PacketType.CLOSE)


# ------------------------------------------------------- Packet encoding: HTTP long-polling


def test_packet_encoding_polling_readme_example() -> None:
    packets = [
        Packet(PacketType.MESSAGE, "hello"),
        Packet(PacketType.PING),
        Packet(PacketType.MESSAGE, "world"),
    ]
    assert encode_payload(packets) == "4hello\x1e2\x1e4world"
    assert decode_payload("4hello\x1e2\x1e4world") == packets


def test_packet_encoding_polling_binary_readme_example() -> None:
    packets = [Packet(PacketType.MESSAGE, "hello"), Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04")]
    assert encode_payload(packets) == "4hello\x1ebAQIDBA=="
    assert decode_payload("4hello\x1ebAQIDBA==") == packets


@pytest.mark.parametrize(
    "body",
    [
        "4hello",
        "4test1\x1e4test2\x1e4test3",
        "4hello\x1ebAQIDBA==",
        "3",
        "1",
    ],
)
def test_packet_encoding_polling_test_suite_bodies_round_trip(body: str) -> None:
    # The bodies test-suite.js POSTs and expects echoed back by the next GET.
    assert encode_payload(decode_payload(body)) == body


def test_packet_encoding_polling_binary_always_base64() -> None:
    # History, "From v3 to v4": always base64 in a payload, whatever the client supports.
    packet = Packet(PacketType.MESSAGE, bytearray(b"\x01\x02"))  # type: ignore[arg-type]
    assert encode_payload([packet]) == "bAQI="
    assert encode_packet(packet, binary_supported=False) == "bAQI="


def test_packet_encoding_polling_bytes_body() -> None:
    assert decode_payload("4é\x1e2".encode()) == [
        Packet(PacketType.MESSAGE, "é"),
        Packet(PacketType.PING),
    ]


def test_packet_encoding_polling_max_packets() -> None:
    assert len(decode_payload("\x1e".join(["3"] * 5), max_packets=5)) == 5
    with pytest.raises(EnginePacketError):
        decode_payload("\x1e".join(["3"] * 6), max_packets=5)
    with pytest.raises(EnginePacketError):
        decode_payload("\x1e".join(["3"] * (DEFAULT_MAX_PAYLOAD_PACKETS + 1)))
    with pytest.raises(ValueError):
        decode_payload("3", max_packets=0)


@pytest.mark.parametrize(
    "body",
    [
        "",  # an empty payload is an empty packet
        "abc",  # test-suite.js "closes the session upon invalid packet format"
        "4hello\x1e",  # trailing separator: empty packet
        "\x1e4hello",
        "4a\x1e\x1e4b",
        "4a\x1e7",
        "4a\x1ebAQIDBA=",
        "4a\x1eb!!!!",
    ],
)
def test_packet_encoding_polling_malformed_payload(body: str) -> None:
    with pytest.raises(EnginePacketError):
        decode_payload(body)


def test_packet_encoding_polling_invalid_utf8() -> None:
    with pytest.raises(EnginePacketError):
        decode_payload(b"4\xff")


def test_packet_encoding_polling_refuses_separator_in_data() -> None:
    with pytest.raises(ValueError):
        encode_payload([Packet(PacketType.MESSAGE, "a\x1eb")])


def test_packet_encoding_polling_refuses_empty_payload() -> None:
    with pytest.raises(ValueError):
        encode_payload([])


# ------------------------------------------------------------ Packet encoding: WebSocket


def test_packet_encoding_websocket_readme_example() -> None:
    assert encode_packet(Packet(PacketType.MESSAGE, "hello"), binary_supported=True) == "4hello"


def test_packet_encoding_websocket_binary_sent_as_is() -> None:
    # test-suite.js "sends and receives a binary packet": a raw binary frame, no type digit.
    frame = encode_packet(Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04"), binary_supported=True)
    assert frame == b"\x01\x02\x03\x04"
    assert decode_packet(b"\x01\x02\x03\x04") == Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04")


def test_packet_encoding_websocket_binary_views_become_bytes() -> None:
    packet = Packet(PacketType.MESSAGE, memoryview(b"\x00\x01"))  # type: ignore[arg-type]
    assert encode_packet(packet, binary_supported=True) == b"\x00\x01"
    decoded = decode_packet(bytearray(b"\x05"))  # type: ignore[arg-type]
    assert type(decoded.data) is bytes


def test_packet_encoding_websocket_empty_binary_frame() -> None:
    assert decode_packet(b"") == Packet(PacketType.MESSAGE, b"")


def test_packet_encoding_websocket_b64_mode() -> None:
    # A WebSocket opened with b64=1 gets binary as base64 text frames.
    frame = encode_packet(Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04"), binary_supported=False)
    assert frame == "bAQIDBA=="
    assert decode_packet("b") == Packet(PacketType.MESSAGE, b"")


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "7",
        "9hello",
        "x",
        "abc",  # test-suite.js, WebSocket "closes the session upon invalid packet format"
        " 4hello",
        "\u0664hello",  # ARABIC-INDIC DIGIT FOUR is not a type digit
        "bAQIDBA=",  # bad padding
        "bAQIDBA",
        "bAQ==AQ==",  # data after the padding
        "b-_8=",  # URL-safe alphabet
        "b AQID",
        "bAQIDBA==\n",
        "bé",
    ],
)
def test_packet_encoding_malformed_packet(frame: str) -> None:
    with pytest.raises(EnginePacketError):
        decode_packet(frame)


def test_packet_error_is_a_value_error() -> None:
    assert issubclass(EnginePacketError, ValueError)


def test_packet_encoding_rejects_binary_outside_message() -> None:
    for binary_supported in (True, False):
        with pytest.raises(ValueError):
            encode_packet(Packet(PacketType.PING, b"x"), binary_supported=binary_supported)


def test_packet_encoding_rejects_other_data_types() -> None:
    with pytest.raises(TypeError):
        packet = Packet(PacketType.MESSAGE, 5)  # type: ignore[arg-type]
        encode_packet(packet, binary_supported=True)
    with pytest.raises(TypeError):
        decode_packet(5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- History


def test_history_v4_has_no_length_prefix() -> None:
    # "From v3 to v4": `€` was "2:4€" in v3; v4 uses the separator only.
    assert encode_payload([Packet(PacketType.MESSAGE, "€")]) == "4€"
    assert decode_payload("4€".encode()) == [Packet(PacketType.MESSAGE, "€")]


# --------------------------------------------------------------------------- properties

_text_without_separator = st.text().filter(lambda s: SEPARATOR not in s)
_packet_types = st.sampled_from(PacketType)
_text_packets = st.builds(Packet, _packet_types, _text_without_separator)
_binary_packets = st.builds(Packet, st.just(PacketType.MESSAGE), st.binary())


def _normalized(packet: Packet) -> Packet:
    """What a decoder returns for ``packet``: text MESSAGE keeps "", others lose it."""
    if packet.data == "" and packet.type is not PacketType.MESSAGE:
        return Packet(packet.type)
    return packet


@given(st.one_of(_text_packets, _binary_packets), st.booleans())
def test_property_packet_round_trip(packet: Packet, binary_supported: bool) -> None:
    encoded = encode_packet(packet, binary_supported=binary_supported)
    assert decode_packet(encoded) == _normalized(packet)


@given(st.lists(st.one_of(_text_packets, _binary_packets), min_size=1, max_size=20))
def test_property_payload_round_trip(packets: list[Packet]) -> None:
    payload = encode_payload(packets)
    assert decode_payload(payload) == [_normalized(p) for p in packets]
    assert decode_payload(payload.encode()) == [_normalized(p) for p in packets]


@given(st.text())
def test_property_decode_packet_raises_only_packet_error(text: str) -> None:
    try:
        packet = decode_packet(text)
    except EnginePacketError:
        return
    assert isinstance(packet.type, PacketType)


@given(st.text(), st.integers(min_value=1, max_value=8))
def test_property_decode_payload_raises_only_packet_error(text: str, max_packets: int) -> None:
    try:
        packets = decode_payload(text, max_packets=max_packets)
    except EnginePacketError:
        return
    assert 1 <= len(packets) <= max_packets
