"""Property tests (hypothesis) of the sans-I/O connection: frames round-trip, chunking does
not change what is parsed, and bytes from the peer never raise out of ``receive_data``."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.exceptions import ProtocolError
from tether.protocol import (
    BinaryMessage,
    Connection,
    DeflateOptions,
    Event,
    Opcode,
    Ping,
    Pong,
    Side,
    TextMessage,
    build_client_request,
    check_client_response,
    serialize_frame,
    server_accept,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

masks = st.binary(min_size=4, max_size=4)


def deflate_pair(**kwargs: object) -> tuple[Connection, Connection]:
    options = DeflateOptions(threshold=0)
    request = build_client_request("h", "/", KEY, deflate=options)
    accepted = server_accept(request, deflate=options)
    _, codec = check_client_response(accepted.response, KEY, deflate=options)
    return (
        Connection(Side.CLIENT, deflate=codec, **kwargs),  # type: ignore[arg-type]
        Connection(Side.SERVER, deflate=accepted.deflate, **kwargs),  # type: ignore[arg-type]
    )


def feed_in_chunks(conn: Connection, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        conn.receive_data(data[start:point])
        events.extend(conn.events_received())
        start = point
    return events


# ---------------------------------------------------------------------------- round trip


@SETTINGS
@given(
    opcode=st.sampled_from([Opcode.BINARY, Opcode.TEXT]),
    text=st.text(max_size=2000),
    data=st.binary(max_size=70000),
    mask=masks,
)
def test_rfc6455_5_2_data_frame_round_trips(
    opcode: Opcode, text: str, data: bytes, mask: bytes
) -> None:
    payload = text.encode() if opcode == Opcode.TEXT else data
    expected = TextMessage(text) if opcode == Opcode.TEXT else BinaryMessage(data)
    server = Connection(Side.SERVER, max_size=None)
    server.receive_data(serialize_frame(opcode, payload, mask=mask))
    assert server.events_received() == [expected]
    client = Connection(Side.CLIENT, max_size=None)
    client.receive_data(serialize_frame(opcode, payload))
    assert client.events_received() == [expected]
    assert server.failure is None and client.failure is None


@SETTINGS
@given(
    opcode=st.sampled_from([Opcode.PING, Opcode.PONG]),
    payload=st.binary(max_size=125),
    mask=masks,
)
def test_rfc6455_5_5_control_frame_round_trips(opcode: Opcode, payload: bytes, mask: bytes) -> None:
    server = Connection(Side.SERVER)
    server.receive_data(serialize_frame(opcode, payload, mask=mask))
    expected = Ping(payload) if opcode == Opcode.PING else Pong(payload)
    assert server.events_received() == [expected]
    if opcode == Opcode.PING:
        assert server.data_to_send() == [serialize_frame(Opcode.PONG, payload)]


@SETTINGS
@given(messages=st.lists(st.text(max_size=300) | st.binary(max_size=300), max_size=6))
def test_rfc6455_send_message_round_trips_client_to_server(messages: list[str | bytes]) -> None:
    client = Connection(Side.CLIENT)
    server = Connection(Side.SERVER)
    for message in messages:
        client.send_message(message)
    server.receive_data(b"".join(client.data_to_send()))
    expected = [TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in messages]
    assert server.events_received() == expected


# ---------------------------------------------------------------------------- chunking


def build_stream(
    messages: list[str | bytes], fragment: int, pings: bool, conn: Connection
) -> tuple[bytes, list[Event]]:
    """Frames ``conn`` sends for ``messages`` (fragmented every ``fragment`` units, a ping
    after every first fragment when ``pings``), and the events the peer must see."""
    expected: list[Event] = []
    for i, message in enumerate(messages):
        pieces = [message[j : j + fragment] for j in range(0, len(message), fragment)] or [message]
        if len(pieces) == 1:
            conn.send_message(message)
        else:
            for k, piece in enumerate(pieces):
                conn.send_fragment(piece, fin=k == len(pieces) - 1)
                if k == 0 and pings:
                    conn.send_ping(str(i).encode())
                    expected.append(Ping(str(i).encode()))
        expected.append(
            TextMessage(message) if isinstance(message, str) else BinaryMessage(message)
        )
    return b"".join(conn.data_to_send()), expected


message_lists = st.lists(
    st.text(max_size=400) | st.binary(max_size=400),
    min_size=1,
    max_size=5,
)


@SETTINGS
@given(
    messages=message_lists,
    fragment=st.integers(min_value=1, max_value=200),
    pings=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=40),
)
def test_rfc6455_chunked_stream_gives_the_same_events_as_the_whole(
    messages: list[str | bytes], fragment: int, pings: bool, cuts: list[int]
) -> None:
    stream, expected = build_stream(messages, fragment, pings, Connection(Side.CLIENT))
    whole = Connection(Side.SERVER)
    whole.receive_data(stream)
    assert whole.events_received() == expected
    chunked = Connection(Side.SERVER)
    assert feed_in_chunks(chunked, stream, cuts) == expected
    assert b"".join(chunked.data_to_send()) == b"".join(whole.data_to_send())
    assert chunked.failure is None


@SETTINGS
@given(
    messages=message_lists,
    fragment=st.integers(min_value=1, max_value=200),
    pings=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=40),
)
def test_rfc7692_chunked_compressed_stream_gives_the_same_events_as_the_whole(
    messages: list[str | bytes], fragment: int, pings: bool, cuts: list[int]
) -> None:
    client, _ = deflate_pair()
    stream, expected = build_stream(messages, fragment, pings, client)
    _, whole = deflate_pair()
    whole.receive_data(stream)
    assert whole.events_received() == expected
    _, chunked = deflate_pair()
    assert feed_in_chunks(chunked, stream, cuts) == expected
    assert chunked.failure is None


@SETTINGS
@given(
    messages=message_lists,
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=40),
)
def test_rfc7692_chunked_server_to_client_compressed_stream(
    messages: list[str | bytes], cuts: list[int]
) -> None:
    _, server = deflate_pair()
    for message in messages:
        server.send_message(message)
    stream = b"".join(server.data_to_send())
    client, _ = deflate_pair()
    expected = [TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in messages]
    assert feed_in_chunks(client, stream, cuts) == expected


# ---------------------------------------------------------------------------- garbage


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
    side=st.sampled_from([Side.SERVER, Side.CLIENT]),
    max_size=st.sampled_from([None, 0, 10, 2**20]),
)
def test_rfc6455_receive_data_never_raises_on_random_bytes(
    data: bytes, cuts: list[int], side: Side, max_size: int | None
) -> None:
    conn = Connection(side, max_size=max_size)
    feed_in_chunks(conn, data, cuts)
    conn.data_to_send()
    if conn.failure is not None:
        assert isinstance(conn.failure, ProtocolError)
        assert conn.failure.code in (1002, 1007, 1009)


@settings(max_examples=400, deadline=None)
@given(
    body=st.binary(max_size=300),
    rsv1=st.booleans(),
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION]),
    fin=st.booleans(),
    mask=masks,
    tail=st.binary(max_size=100),
    max_size=st.sampled_from([None, 0, 10, 2**20]),
)
def test_rfc7692_receive_data_never_raises_on_random_compressed_payloads(
    body: bytes,
    rsv1: bool,
    opcode: Opcode,
    fin: bool,
    mask: bytes,
    tail: bytes,
    max_size: int | None,
) -> None:
    _, server = deflate_pair(max_size=max_size)
    server.receive_data(serialize_frame(opcode, body, fin=fin, rsv1=rsv1, mask=mask) + tail)
    server.events_received()
    if server.failure is not None:
        assert isinstance(server.failure, ProtocolError)
        assert server.failure.code in (1002, 1007, 1009)
