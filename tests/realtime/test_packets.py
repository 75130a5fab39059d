"""Socket.IO v5 packets: every encoding example of the socket.io-protocol README, its
sample session, the packets the official test suite sends and expects, the validity rules
of the reference parser, malformed input, and round-trip properties.

Test names follow the README sections: "Exchange protocol" (connection to a namespace,
sending and receiving data, acknowledgement, disconnection), "Packet encoding",
"Sample session".
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.engine import packets as eio
from tether.realtime.packets import (
    DEFAULT_MAX_ATTACHMENTS,
    MAX_ACK_ID,
    PROTOCOL_VERSION,
    RESERVED_EVENTS,
    Decoder,
    Packet,
    PacketType,
    SocketIOPacketError,
    encode,
    encode_ack,
    encode_event,
)

CONNECT = PacketType.CONNECT
DISCONNECT = PacketType.DISCONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK
CONNECT_ERROR = PacketType.CONNECT_ERROR
BINARY_EVENT = PacketType.BINARY_EVENT
BINARY_ACK = PacketType.BINARY_ACK


def decode_all(*messages: str | bytes, decoder: Decoder | None = None) -> list[Packet]:
    """Feed messages in order; return the packets that came out."""
    decoder = decoder or Decoder()
    out = []
    for message in messages:
        packet = decoder.feed(message)
        if packet is not None:
            out.append(packet)
    return out


def decode_one(*messages: str | bytes, max_attachments: int = DEFAULT_MAX_ATTACHMENTS) -> Packet:
    [packet] = decode_all(*messages, decoder=Decoder(max_attachments=max_attachments))
    return packet


# --------------------------------------------------------------------------- Exchange protocol


def test_exchange_protocol_version_is_5() -> None:
    assert PROTOCOL_VERSION == 5


@pytest.mark.parametrize(
    ("packet_type", "value"),
    [
        (CONNECT, 0),
        (DISCONNECT, 1),
        (EVENT, 2),
        (ACK, 3),
        (CONNECT_ERROR, 4),
        (BINARY_EVENT, 5),
        (BINARY_ACK, 6),
    ],
)
def test_exchange_protocol_packet_type_ids(packet_type: PacketType, value: int) -> None:
    assert packet_type == value


def test_exchange_protocol_packet_defaults() -> None:
    packet = Packet(CONNECT)
    assert (packet.namespace, packet.data, packet.id, packet.attachments) == ("/", None, None, 0)


# --------------------------------------------------- Packet encoding: connection to a namespace

# (packet, encoded) pairs from the README "Examples" section.
README_EXAMPLES: list[tuple[Packet, list[str | bytes]]] = [
    # Connection to a namespace
    (Packet(CONNECT), ["0"]),
    (
        Packet(CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
        ['0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}'],
    ),
    (Packet(CONNECT_ERROR, "/", {"message": "Not authorized"}), ['4{"message":"Not authorized"}']),
    # Sending and receiving data
    (Packet(EVENT, "/", ["foo"]), ['2["foo"]']),
    (Packet(EVENT, "/admin", ["bar"]), ['2/admin,["bar"]']),
    (
        Packet(BINARY_EVENT, "/", ["baz", b"\x01\x02\x03\x04"], attachments=1),
        ['51-["baz",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"],
    ),
    (
        Packet(BINARY_EVENT, "/admin", ["baz", b"\x01\x02", b"\x03\x04"], attachments=2),
        [
            '52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02",
            b"\x03\x04",
        ],
    ),
    # Acknowledgement
    (Packet(EVENT, "/", ["foo"], 12), ['212["foo"]']),
    (Packet(ACK, "/admin", ["bar"], 13), ['3/admin,13["bar"]']),
    (
        Packet(BINARY_ACK, "/", ["bar", b"\x01\x02\x03\x04"], 15, attachments=1),
        ['61-15["bar",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"],
    ),
    # Disconnection from a namespace
    (Packet(DISCONNECT), ["1"]),
    (Packet(DISCONNECT, "/admin"), ["1/admin,"]),
]


@pytest.mark.parametrize(("packet", "encoded"), README_EXAMPLES)
def test_packet_encoding_readme_examples_encode(packet: Packet, encoded: list[str | bytes]) -> None:
    assert encode(packet) == encoded


@pytest.mark.parametrize(("packet", "encoded"), README_EXAMPLES)
def test_packet_encoding_readme_examples_decode(packet: Packet, encoded: list[str | bytes]) -> None:
    assert decode_one(*encoded) == packet


def test_packet_encoding_event_with_bytes_becomes_binary_event() -> None:
    # "the type becomes BINARY_*": EVENT with bytes encodes as BINARY_EVENT ...
    assert encode(Packet(EVENT, "/", ["baz", b"\x01"])) == [
        '51-["baz",{"_placeholder":true,"num":0}]',
        b"\x01",
    ]
    assert encode(Packet(ACK, "/", [b"\x01"], 3))[0] == '61-3[{"_placeholder":true,"num":0}]'
    # ... and BINARY_EVENT without bytes as EVENT.
    assert encode(Packet(BINARY_EVENT, "/", ["baz"], attachments=4)) == ['2["baz"]']
    assert encode(Packet(BINARY_ACK, "/", [], 1)) == ["31[]"]


def test_packet_encoding_bytes_nested_anywhere() -> None:
    data = ["e", {"a": [1, {"b": b"\x00"}], "c": bytearray(b"\x01")}, [[memoryview(b"\x02")]]]
    encoded = encode(Packet(EVENT, "/", data))
    assert encoded == [
        '53-["e",{"a":[1,{"b":{"_placeholder":true,"num":0}}],'
        '"c":{"_placeholder":true,"num":1}},[[{"_placeholder":true,"num":2}]]]',
        b"\x00",
        b"\x01",
        b"\x02",
    ]
    assert all(type(part) is bytes for part in encoded[1:])
    assert decode_one(*encoded).data == ["e", {"a": [1, {"b": b"\x00"}], "c": b"\x01"}, [[b"\x02"]]]


def test_packet_encoding_compact_json_and_unicode() -> None:
    assert encode_event("/", "msg", [{"a": 1, "b": [True, None]}, "é€😀"]) == [
        '2["msg",{"a":1,"b":[true,null]},"é€😀"]'
    ]


def test_packet_encoding_non_finite_floats_become_null_like_json_stringify() -> None:
    assert encode_event("/", "x", [math.nan, {"a": math.inf}, (-math.inf,)]) == [
        '2["x",null,{"a":null},[null]]'
    ]
    assert encode_event("/", "x", [math.nan, b"\x01"]) == [
        '51-["x",null,{"_placeholder":true,"num":0}]',
        b"\x01",
    ]
    assert encode(Packet(CONNECT_ERROR, "/", {"message": "m", "data": math.inf})) == [
        '4{"message":"m","data":null}'
    ]


def test_packet_encoding_tuple_args() -> None:
    assert encode(Packet(EVENT, "/", ("a", (1, 2)))) == ['2["a",[1,2]]']


def test_packet_encoding_connect_error_string_payload() -> None:
    assert encode(Packet(CONNECT_ERROR, "/", "nope")) == ['4"nope"']
    assert decode_one('4"nope"') == Packet(CONNECT_ERROR, "/", "nope")


def test_packet_encoding_encode_event_and_ack_helpers() -> None:
    assert encode_event("/", "foo") == ['2["foo"]']
    assert encode_event("/admin", "foo", [1], ack_id=0) == ['2/admin,0["foo",1]']
    assert encode_event("/", "foo", [b"\x01"], 9) == [
        '51-9["foo",{"_placeholder":true,"num":0}]',
        b"\x01",
    ]
    assert encode_ack("/", 12) == ["312[]"]
    assert encode_ack("/admin", 13, ("bar",)) == ['3/admin,13["bar"]']
    assert encode_ack("/", 15, ["bar", b"\x01"]) == [
        '61-15["bar",{"_placeholder":true,"num":0}]',
        b"\x01",
    ]


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        (Packet(EVENT, "admin", ["a"]), ValueError),
        (Packet(EVENT, "", ["a"]), ValueError),
        (Packet(EVENT, "/a,b", ["a"]), ValueError),
        (Packet(EVENT, "/", []), ValueError),
        (Packet(EVENT, "/", None), ValueError),
        (Packet(EVENT, "/", {"a": 1}), ValueError),
        (Packet(EVENT, "/", [None]), ValueError),
        (Packet(EVENT, "/", [True]), ValueError),
        (Packet(EVENT, "/", [b"name"]), ValueError),
        (Packet(EVENT, "/", ["disconnect"]), ValueError),
        (Packet(EVENT, "/", ["a"], -1), ValueError),
        (Packet(EVENT, "/", ["a"], MAX_ACK_ID + 1), ValueError),
        (Packet(EVENT, "/", ["a"], True), ValueError),
        (Packet(ACK, "/", []), ValueError),  # an ACK needs its id
        (Packet(ACK, "/", None, 1), ValueError),
        (Packet(CONNECT, "/", ["a"]), ValueError),
        (Packet(CONNECT, "/", None, 1), ValueError),
        (Packet(DISCONNECT, "/", {}), ValueError),
        (Packet(CONNECT_ERROR, "/"), ValueError),
        (Packet(CONNECT_ERROR, "/", ["a"]), ValueError),
        (Packet(CONNECT, "/", {"a": b"x"}), TypeError),
        (Packet(CONNECT, "/", {"a": math.nan, "b": b"x"}), TypeError),
        (Packet(CONNECT_ERROR, "/", {"message": b"x"}), TypeError),
        (Packet(EVENT, "/", ["a", object()]), TypeError),
        (Packet(EVENT, "/", ["a", {1.5j: 1}]), TypeError),
    ],
)
def test_packet_encoding_refuses_invalid_packets(packet: Packet, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(packet)


def test_packet_encoding_helpers_refuse_invalid_arguments() -> None:
    for name in RESERVED_EVENTS:
        with pytest.raises(ValueError):
            encode_event("/", name)
    with pytest.raises(ValueError):
        encode_event("/", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_event("x", "a")
    with pytest.raises(ValueError):
        encode_event("/", "a", ack_id=-1)
    with pytest.raises(ValueError):
        encode_ack("/", -1)
    with pytest.raises(ValueError):
        encode_ack("nsp", 1)


def test_packet_encoding_numeric_event_name() -> None:
    # The reference parser accepts a number as the event name.
    assert encode(Packet(EVENT, "/", [1, "a"])) == ['2[1,"a"]']
    assert decode_one('2[1,"a"]').data == [1, "a"]
    assert decode_one("2[1.5]").data == [1.5]


# ----------------------------------------------------------------------- Sample session


def test_sample_session_socket_io_packets_inside_engine_io_messages() -> None:
    """The socket.io-protocol README "Sample session", both layers decoded."""
    decoder = Decoder()

    def receive(frame: str | bytes) -> Packet | None:
        message = eio.decode_packet(frame)
        assert message.type is eio.PacketType.MESSAGE
        assert message.data is not None
        return decoder.feed(message.data)

    # Request n°2 (namespace connection request) and n°3 (approval).
    assert receive("40") == Packet(CONNECT)
    assert receive('40{"sid":"wZX3oN0bSVIhsaknAAAI"}') == Packet(
        CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"}
    )
    # Request n°4: socket.emit('hey', 'Jude') on the server.
    assert receive('42["hey","Jude"]') == Packet(EVENT, "/", ["hey", "Jude"])
    # Request n°5: two packets in one POST body.
    body = eio.decode_payload('42["hello"]\x1e42["world"]')
    assert [decoder.feed(p.data) for p in body] == [  # type: ignore[arg-type]
        Packet(EVENT, "/", ["hello"]),
        Packet(EVENT, "/", ["world"]),
    ]
    # Request n°6, WebSocket frames.
    assert receive("40/admin,") == Packet(CONNECT, "/admin")
    assert receive('40/admin,{"sid":"-G5j-67EZFp-q59rADQM"}') == Packet(
        CONNECT, "/admin", {"sid": "-G5j-67EZFp-q59rADQM"}
    )
    assert receive('42/admin,1["tellme"]') == Packet(EVENT, "/admin", ["tellme"], 1)
    assert receive('461-/admin,1[{"_placeholder":true,"num":0}]') is None
    assert receive(b"\xde\xad") == Packet(BINARY_ACK, "/admin", [b"\xde\xad"], 1, 1)


def test_sample_session_server_side_encoding() -> None:
    def send(packet: Packet) -> list[str | bytes]:
        return [
            eio.encode_packet(eio.Packet(eio.PacketType.MESSAGE, part), binary_supported=True)
            for part in encode(packet)
        ]

    assert send(Packet(CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"})) == [
        '40{"sid":"wZX3oN0bSVIhsaknAAAI"}'
    ]
    assert send(Packet(EVENT, "/", ["hey", "Jude"])) == ['42["hey","Jude"]']
    assert send(Packet(ACK, "/admin", [b"\xde\xad"], 1)) == [
        '461-/admin,1[{"_placeholder":true,"num":0}]',
        b"\xde\xad",
    ]
    # Over HTTP long-polling the attachment is base64 in the same payload.
    messages = [eio.Packet(eio.PacketType.MESSAGE, p) for p in encode_event("/", "f", [b"\x01"])]
    assert eio.encode_payload(messages) == '451-["f",{"_placeholder":true,"num":0}]\x1ebAQ=='


# ----------------------------------------------- the official test suite (test-suite.js)


@pytest.mark.parametrize(
    ("message", "packet"),
    [
        ("0", Packet(CONNECT)),
        ('0{"token":"123"}', Packet(CONNECT, "/", {"token": "123"})),
        ("0/custom,", Packet(CONNECT, "/custom")),
        ('0/custom,{"token":"abc"}', Packet(CONNECT, "/custom", {"token": "abc"})),
        # no trailing comma: the namespace runs to the end of the packet
        ("0/random", Packet(CONNECT, "/random")),
        ("0/custom", Packet(CONNECT, "/custom")),
        ("1", Packet(DISCONNECT)),
        ("1/custom", Packet(DISCONNECT, "/custom")),
        (
            '2["message","message to main namespace"]',
            Packet(EVENT, "/", ["message", "message to main namespace"]),
        ),
        ('2["message",1,"2",{"3":[true]}]', Packet(EVENT, "/", ["message", 1, "2", {"3": [True]}])),
        (
            '2456["message-with-ack",1,"2",{"3":[false]}]',
            Packet(EVENT, "/", ["message-with-ack", 1, "2", {"3": [False]}], 456),
        ),
    ],
)
def test_test_suite_client_packets(message: str, packet: Packet) -> None:
    # The client messages of test-suite.js, without the Engine.IO "4" prefix.
    assert decode_one(message) == packet


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (Packet(EVENT, "/", ["auth", {}]), '2["auth",{}]'),
        (Packet(EVENT, "/", ["auth", {"token": "123"}]), '2["auth",{"token":"123"}]'),
        (Packet(EVENT, "/custom", ["auth", {}]), '2/custom,["auth",{}]'),
        (Packet(EVENT, "/custom", ["auth", {"token": "abc"}]), '2/custom,["auth",{"token":"abc"}]'),
        (
            Packet(CONNECT_ERROR, "/random", {"message": "Invalid namespace"}),
            '4/random,{"message":"Invalid namespace"}',
        ),
        (
            Packet(EVENT, "/", ["message-back", "message to main namespace"]),
            '2["message-back","message to main namespace"]',
        ),
        (
            Packet(EVENT, "/", ["message-back", 1, "2", {"3": [True]}]),
            '2["message-back",1,"2",{"3":[true]}]',
        ),
        (Packet(ACK, "/", [1, "2", {"3": [False]}], 456), '3456[1,"2",{"3":[false]}]'),
    ],
)
def test_test_suite_server_packets(packet: Packet, expected: str) -> None:
    # The server messages test-suite.js expects, without the Engine.IO "4" prefix.
    assert encode(packet) == [expected]


def test_test_suite_binary_attachments_echo() -> None:
    header = '52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    packet = decode_one(header, b"\x01\x02\x03", b"\x04\x05\x06")
    assert packet == Packet(
        BINARY_EVENT, "/", ["message", b"\x01\x02\x03", b"\x04\x05\x06"], None, 2
    )
    assert encode_event("/", "message-back", packet.data[1:]) == [
        '52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01\x02\x03",
        b"\x04\x05\x06",
    ]


def test_test_suite_binary_attachments_and_ack() -> None:
    header = (
        '52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    )
    packet = decode_one(header, b"\x01\x02\x03", b"\x04\x05\x06")
    assert packet.type is BINARY_EVENT
    assert packet.id == 789
    assert encode_ack("/", 789, packet.data[1:]) == [
        '62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01\x02\x03",
        b"\x04\x05\x06",
    ]


@pytest.mark.parametrize(
    "message",
    [
        "abc",  # "4abc": unknown packet type; also the invalid handshake
        "2{}",  # "42{}": invalid payload format
        '2abc["message-with-ack",1,"2",{"3":[false]}]',  # "42abc[...]": invalid ack id
    ],
)
def test_test_suite_invalid_format_closes(message: str) -> None:
    with pytest.raises(SocketIOPacketError):
        Decoder().feed(message)


# ------------------------------------------------ decoding: the reference parser's rules


@pytest.mark.parametrize(
    "message",
    [
        # type
        "",
        "7",
        "9[]",
        "a",
        " 2[]",
        "\u0662[]",  # a non-ASCII digit two
        "-1",
        # attachments
        '5["a"]',  # BINARY_EVENT without a count
        '5-["a"]',  # count missing before the dash
        '5a-["a"]',
        '51["a"]',
        "51",
        '5 1-["a"]',
        '5\u0661-["a"]',
        '511-["a"]',  # over the default limit of 10
        '599999999999999999999-["a"]',
        "6-1[]",
        # namespace and ack id
        '2admin,["a"]',
        '2/admin["a","b"]',  # no comma: the namespace eats the payload up to the first comma
        '2 1["a"]',
        '21 2["a"]',
        '2\u0661["a"]',
        '2-1["a"]',
        '29007199254740992["a"]',  # 2**53: beyond MAX_ACK_ID
        '212345678901234567890["a"]',
        "3[]",  # ACK without ack id
        "3/admin,[]",
        '41{"message":"x"}',  # CONNECT_ERROR with an ack id
        # payload: CONNECT
        "0[]",
        '0"a"',
        "0null",
        "0123",
        "0/admin,1",
        "0/admin,{",
        # payload: DISCONNECT
        "1{}",
        "1/admin,{}",
        "1null",
        # payload: EVENT
        "2",
        "2/admin,",
        "21",
        "2[]",
        "2{}",
        "2null",
        '2"a"',
        "2[null]",
        "2[true]",
        "2[[]]",
        "2[{}]",
        '2["connect"]',
        '2["connect_error"]',
        '2["disconnect",1]',
        '2["disconnecting"]',
        '2["newListener"]',
        '2["removeListener"]',
        "2[NaN]",
        '2["a",Infinity]',
        '2["a",-Infinity]',
        '2["a"]x',
        '2["a"',
        "2" + "[" * 100000,
        # payload: ACK
        "31",
        "31{}",
        '31"a"',
        "31null",
        # payload: CONNECT_ERROR
        "4",
        "4/admin,",
        "4[]",
        "41",
        "4null",
        # binary types follow the same payload rules
        "51-{}",
        "51-[]",
        '51-["connect",{"_placeholder":true,"num":0}]',
        "61-{}",
        "61-[]",  # BINARY_ACK without ack id
        # lone surrogates cannot be relayed as UTF-8
        '2["\\ud800"]',
        '2["a",{"k":"\\uDFFF"}]',
    ],
)
def test_decoding_malformed_packets(message: str) -> None:
    with pytest.raises(SocketIOPacketError):
        Decoder().feed(message)


@pytest.mark.parametrize(
    ("message", "packet"),
    [
        ("0/,", Packet(CONNECT)),
        ("0/", Packet(CONNECT)),
        ("0/admin,{}", Packet(CONNECT, "/admin", {})),
        ("0/a/b,", Packet(CONNECT, "/a/b")),
        ("0/admin?x=1,", Packet(CONNECT, "/admin?x=1")),
        ("1/admin", Packet(DISCONNECT, "/admin")),
        ('2["a",["b",{"c":null}]]', Packet(EVENT, "/", ["a", ["b", {"c": None}]])),
        ('2 ["a"]', Packet(EVENT, "/", ["a"])),  # JSON whitespace, as JSON.parse
        ('20["a"]', Packet(EVENT, "/", ["a"], 0)),
        ('29007199254740991["a"]', Packet(EVENT, "/", ["a"], MAX_ACK_ID)),
        ('2007["a"]', Packet(EVENT, "/", ["a"], 7)),
        ("30[]", Packet(ACK, "/", [], 0)),
        ('3/admin,5[1,"a"]', Packet(ACK, "/admin", [1, "a"], 5)),
        (
            '4/admin,{"message":"m","data":{"x":1}}',
            Packet(CONNECT_ERROR, "/admin", {"message": "m", "data": {"x": 1}}),
        ),
        ('2["\\ud83d\\ude00"]', Packet(EVENT, "/", ["😀"])),  # a surrogate pair is fine
        ('2["\\\\ud800"]', Packet(EVENT, "/", ["\\ud800"])),  # an escaped backslash
        ('2["a",1e400]', Packet(EVENT, "/", ["a", math.inf])),  # as JSON.parse: Infinity
        # BINARY_* with zero attachments comes out at once, placeholders untouched
        ('50-["a"]', Packet(BINARY_EVENT, "/", ["a"])),
        ('60-3["a"]', Packet(BINARY_ACK, "/", ["a"], 3)),
        ('510-["a"]', Packet(BINARY_EVENT, "/", ["a"], attachments=10)),
    ],
)
def test_decoding_valid_edge_cases(message: str, packet: Packet) -> None:
    decoder = Decoder()
    result = decoder.feed(message)
    if packet.attachments:
        assert result is None
        assert decoder.awaiting_attachments == packet.attachments
    else:
        assert result == packet


def test_decoding_infinite_float_re_encodes_as_null() -> None:
    packet = decode_one('2["a",1e400]')
    assert encode(packet) == ['2["a",null]']


def test_decoding_placeholder_rules() -> None:
    # num must be an int in range; _placeholder must be exactly true.
    for bad in ("-1", "1", '"0"', "true", "0.0", "null"):
        decoder = Decoder()
        assert decoder.feed('51-["a",{"_placeholder":true,"num":' + bad + "}]") is None
        with pytest.raises(SocketIOPacketError):
            decoder.feed(b"x")
        assert decoder.awaiting_attachments == 0
    decoder = Decoder()
    decoder.feed('51-["a",{"_placeholder":true}]')
    with pytest.raises(SocketIOPacketError):
        decoder.feed(b"x")
    # Not a placeholder: left as is.
    packet = decode_one('51-["a",{"_placeholder":1,"num":0},{"_placeholder":true,"num":0}]', b"x")
    assert packet.data == ["a", {"_placeholder": 1, "num": 0}, b"x"]
    # Extra keys do not matter (as in the reference parser); a buffer may be used twice.
    packet = decode_one(
        '51-["a",{"_placeholder":true,"num":0,"x":1},[{"_placeholder":true,"num":0}]]', b"x"
    )
    assert packet.data == ["a", b"x", [b"x"]]
    # Placeholders in a non-binary packet are plain objects.
    assert decode_one('2["a",{"_placeholder":true,"num":0}]').data == [
        "a",
        {"_placeholder": True, "num": 0},
    ]


def test_decoding_attachment_state_machine() -> None:
    decoder = Decoder()
    assert decoder.awaiting_attachments == 0
    assert (
        decoder.feed('52-/x,4["a",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]')
        is None
    )
    assert decoder.awaiting_attachments == 2
    assert decoder.feed(bytearray(b"first")) is None  # type: ignore[arg-type]
    assert decoder.awaiting_attachments == 1
    packet = decoder.feed(memoryview(b"second"))  # type: ignore[arg-type]
    assert packet == Packet(BINARY_EVENT, "/x", ["a", b"second", b"first"], 4, 2)
    assert packet is not None and all(type(b) is bytes for b in packet.data[1:])
    assert decoder.awaiting_attachments == 0
    # The decoder is ready for the next packet.
    assert decoder.feed('2["b"]') == Packet(EVENT, "/", ["b"])


def test_decoding_text_while_waiting_for_attachments() -> None:
    decoder = Decoder()
    decoder.feed('51-["a",{"_placeholder":true,"num":0}]')
    with pytest.raises(SocketIOPacketError):
        decoder.feed('2["b"]')
    # reset after the error
    assert decoder.awaiting_attachments == 0
    assert decoder.feed('2["b"]') == Packet(EVENT, "/", ["b"])


def test_decoding_binary_without_header() -> None:
    with pytest.raises(SocketIOPacketError):
        Decoder().feed(b"\x01")


def test_decoding_reset_drops_pending_packet() -> None:
    decoder = Decoder()
    decoder.feed('51-["a",{"_placeholder":true,"num":0}]')
    decoder.reset()
    assert decoder.awaiting_attachments == 0
    with pytest.raises(SocketIOPacketError):
        decoder.feed(b"\x01")


def test_decoding_max_attachments() -> None:
    assert DEFAULT_MAX_ATTACHMENTS == 10
    decoder = Decoder(max_attachments=2)
    assert decoder.feed('52-["a"]') is None
    with pytest.raises(SocketIOPacketError):
        Decoder(max_attachments=2).feed('53-["a"]')
    assert Decoder(max_attachments=0).feed('50-["a"]') == Packet(BINARY_EVENT, "/", ["a"])
    with pytest.raises(SocketIOPacketError):
        Decoder(max_attachments=0).feed('51-["a"]')
    with pytest.raises(ValueError):
        Decoder(max_attachments=-1)


def test_decoding_rejects_other_input_types() -> None:
    with pytest.raises(TypeError):
        Decoder().feed(1)  # type: ignore[arg-type]


def test_packet_error_is_a_value_error() -> None:
    assert issubclass(SocketIOPacketError, ValueError)


# --------------------------------------------------------------------------- properties

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_keys = st.text(max_size=10).filter(lambda k: k != "_placeholder")


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=5)


def _json_like(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, _containers, max_leaves=25)


_args_with_bytes = st.lists(_json_like(_json_scalars | st.binary(max_size=16)), max_size=6)
_event_names = st.text(max_size=20).filter(lambda n: n not in RESERVED_EVENTS)
_namespaces = st.just("/") | st.text(max_size=12).filter(lambda s: "," not in s).map(
    lambda s: "/" + s
)
_ack_ids = st.none() | st.integers(min_value=0, max_value=MAX_ACK_ID)


def _count_bytes(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, list):
        return sum(_count_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_bytes(v) for v in value.values())
    return 0


@given(_namespaces, _event_names, _args_with_bytes, _ack_ids)
def test_property_event_round_trip(
    namespace: str, event: str, args: list[Any], ack_id: int | None
) -> None:
    encoded = encode_event(namespace, event, args, ack_id)
    attachments = _count_bytes(args)
    assert len(encoded) == 1 + attachments
    assert isinstance(encoded[0], str)
    packet = decode_one(*encoded, max_attachments=len(encoded))
    assert packet == Packet(
        BINARY_EVENT if attachments else EVENT, namespace, [event, *args], ack_id, attachments
    )
    # Encoding what was decoded gives the same messages.
    assert encode(packet) == encoded


@given(_namespaces, _args_with_bytes, st.integers(min_value=0, max_value=MAX_ACK_ID))
def test_property_ack_round_trip(namespace: str, args: list[Any], ack_id: int) -> None:
    encoded = encode_ack(namespace, ack_id, args)
    attachments = _count_bytes(args)
    packet = decode_one(*encoded, max_attachments=len(encoded))
    assert packet == Packet(
        BINARY_ACK if attachments else ACK, namespace, args, ack_id, attachments
    )
    assert encode(packet) == encoded


@given(
    _namespaces,
    st.none() | st.dictionaries(_keys, _json_like(_json_scalars), max_size=5),
)
def test_property_connect_round_trip(namespace: str, data: dict[str, Any] | None) -> None:
    packet = Packet(CONNECT, namespace, data)
    assert decode_one(*encode(packet)) == packet


@given(_namespaces, st.text(max_size=30) | st.dictionaries(_keys, _json_like(_json_scalars)))
def test_property_connect_error_round_trip(namespace: str, data: str | dict[str, Any]) -> None:
    packet = Packet(CONNECT_ERROR, namespace, data)
    assert decode_one(*encode(packet)) == packet


@given(_namespaces)
def test_property_disconnect_round_trip(namespace: str) -> None:
    assert decode_one(*encode(Packet(DISCONNECT, namespace))) == Packet(DISCONNECT, namespace)


@given(st.lists(st.text(max_size=40) | st.binary(max_size=8), max_size=8))
def test_property_decoder_raises_only_packet_error(messages: list[str | bytes]) -> None:
    decoder = Decoder()
    for message in messages:
        try:
            packet = decoder.feed(message)
        except SocketIOPacketError:
            assert decoder.awaiting_attachments == 0
            continue
        if packet is not None:
            assert packet.namespace.startswith("/")
            # Whatever the decoder accepts, the encoder can send on.
            for part in encode(packet):
                if isinstance(part, str):
                    part.encode("utf-8")


@given(st.text(alphabet='0123456789-/,[]{}"abc:_ ', max_size=30))
def test_property_decoder_on_protocol_alphabet(text: str) -> None:
    try:
        packet = Decoder().feed(text)
    except SocketIOPacketError:
        return
    if packet is not None and not packet.attachments:
        assert decode_one(*encode(packet)).data == packet.data
