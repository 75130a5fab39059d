"""The Redis wire format, without Redis: bytes in, dataclasses out."""

from __future__ import annotations

import json
import sys

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.broker import Broadcast, Envelope, NodeRequest, RedisBroker, wire
from tether.broker.messages import Reply
from tether.exceptions import PacketError

names = st.text(min_size=1, max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    event=names,
    args=st.lists(values, max_size=4),
    rooms=st.lists(names, max_size=3, unique=True),
    except_rooms=st.lists(names, max_size=3, unique=True),
)
def test_broadcast_round_trip(
    event: str, args: list[object], rooms: list[str], except_rooms: list[str]
) -> None:
    message = Broadcast(
        namespace="/ns",
        rooms=tuple(rooms),
        except_rooms=tuple(except_rooms),
        data=(event, *args),
        flags={"volatile": True},
        origin="node-1",
        message_id="m1",
    )
    assert wire.decode_broadcast(wire.encode_broadcast(message), "/ns") == message


def test_broadcast_is_the_socket_io_adapter_format() -> None:
    message = Broadcast("/", ("r",), ("x",), ("ev", b"\x01"), {}, "n1", "id1")
    uid, packet, opts = msgpack.unpackb(wire.encode_broadcast(message), raw=False)
    assert uid == "n1"
    assert packet == {"type": 2, "nsp": "/", "data": ["ev", b"\x01"]}
    assert opts == {"rooms": ["r"], "except": ["x"], "flags": {}, "tid": "id1"}


def test_encoded_packet_round_trip() -> None:
    message = Broadcast("/", ("r",), (), (), {}, "n1", "id1", encoded='2["ev"]')
    assert wire.decode_broadcast(wire.encode_broadcast(message), "/") == message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb(["u", {"type": 2, "nsp": "/other", "data": []}, {}]),
        msgpack.packb(["u", {"type": "2", "nsp": "/"}, {}]),
        msgpack.packb(["u", {"type": 2, "nsp": "/"}, {"rooms": [1]}]),
    ],
)
def test_bad_broadcasts_raise_packet_error(data: bytes) -> None:
    with pytest.raises(PacketError):
        wire.decode_broadcast(data, "/")


def test_emitter_requests() -> None:
    join = json.dumps({"type": 2, "opts": {"rooms": ["a"], "except": []}, "rooms": ["b"]})
    command = wire.decode_command(join.encode(), "/")
    assert command is not None and command.kind == "join"
    assert command.rooms == ("a",) and command.target_rooms == ("b",)
    # socket.io node-to-node request types are not for tether
    assert wire.decode_command(b'{"type": 0, "requestId": "x"}', "/") is None
    with pytest.raises(PacketError):
        wire.decode_command(b"{not json", "/")


def test_node_messages_round_trip() -> None:
    request = NodeRequest("/", "fetch", {"b": b"\x00"}, "n1", "r1")
    assert wire.decode_node_message(wire.encode_request(request)) == request
    reply = Reply("r1", "n2", False, None, "boom")
    assert wire.decode_node_message(wire.encode_reply(reply)) == reply
    with pytest.raises(PacketError):
        wire.decode_node_message(msgpack.packb({"v": 2, "t": "req"}))
    with pytest.raises(PacketError):
        wire.decode_node_message(msgpack.packb({"v": 1, "t": "req"}))


def test_envelope_round_trip() -> None:
    envelope = Envelope("broadcast", "/", "n1", {"data": [b"\x00"]})
    assert wire.decode_envelope(wire.encode_envelope(envelope)) == envelope


def test_unencodable_data_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        wire.encode_broadcast(Broadcast("/", data=("ev", object())))


def test_missing_redis_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"tether\[redis\]"):
        RedisBroker()
