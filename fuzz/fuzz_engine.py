"""Fuzz the Engine.IO v4 decoders: packet, long-polling payload and open payload.

The first byte chooses the decoder, the rest is the input. Only
:class:`~tether.exceptions.EnginePacketError` may come out of a decoder, and what one
accepts survives a round trip: encoded again it decodes to the same value. A payload never
decodes to more than ``max_packets`` packets.
"""

from __future__ import annotations

from tether.engine.packets import (
    OpenPayload,
    Packet,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from tether.exceptions import EnginePacketError

from ._common import Reader, Target

__all__ = ["TARGET", "one_input"]

_MAX_PACKETS = (1, 2, 16, 4096)


def _round_trip(packet: Packet) -> None:
    again = decode_packet(encode_packet(packet, binary_supported=False))
    assert again == packet, (again, packet)
    if isinstance(packet.data, bytes):
        assert decode_packet(encode_packet(packet, binary_supported=True)) == packet


def _text_packet(text: str) -> None:
    try:
        packet = decode_packet(text)
    except EnginePacketError:
        return
    _round_trip(packet)


def _binary_packet(data: bytes) -> None:
    packet = decode_packet(data)  # a binary frame is always a binary message
    assert packet.data == data
    _round_trip(packet)


def _payload(reader: Reader) -> None:
    max_packets = _MAX_PACKETS[reader.byte() % len(_MAX_PACKETS)]
    body = reader.rest()
    try:
        packets = decode_payload(body, max_packets=max_packets)
    except EnginePacketError:
        return
    assert 1 <= len(packets) <= max_packets
    assert decode_payload(encode_payload(packets), max_packets=max_packets) == packets


def _open(text: str) -> None:
    try:
        payload = OpenPayload.from_json(text)
    except EnginePacketError:
        return
    assert OpenPayload.from_json(payload.to_json()) == payload
    assert decode_packet(encode_packet(payload.to_packet(), binary_supported=True)).type == 0


def one_input(data: bytes) -> None:
    """Run the decoder the first byte chooses."""
    reader = Reader(data)
    mode = reader.byte() % 4
    if mode == 2:
        _payload(reader)
        return
    rest = reader.rest()
    if mode == 1:
        _binary_packet(rest)
        return
    # Text comes from a WebSocket text frame or a UTF-8 body: always valid UTF-8.
    text = rest.decode("utf-8", "replace")
    if mode == 0:
        _text_packet(text)
    else:
        _open(text)


TARGET = Target("engine", one_input, max_len=4096)
