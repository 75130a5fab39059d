"""Fuzz the Socket.IO v5 decoder: packet parsing and binary reassembly.

The first byte chooses ``max_attachments``; the rest is split on ``\\n`` into Engine.IO
messages, a piece starting with ``\\x00`` being a binary attachment (the rest of it) and
any other piece text. Invariants:

- ``Decoder.feed`` raises only :class:`~tether.exceptions.SocketIOPacketError`, after
  which the decoder is reset and takes the next packet;
- a packet never announces more than ``max_attachments`` attachments and the decoder never
  waits for more;
- a decoded packet encodes again (the encoder's rules are the decoder's) and decodes to
  the same packet.
"""

from __future__ import annotations

from tether.exceptions import SocketIOPacketError
from tether.realtime.packets import Decoder, Packet, PacketType, encode

from ._common import Reader, Target

__all__ = ["TARGET", "one_input"]

# A BINARY_* packet without attachments is encoded as its plain type.
_PLAIN = {PacketType.BINARY_EVENT: PacketType.EVENT, PacketType.BINARY_ACK: PacketType.ACK}


def _same(a: Packet, b: Packet) -> bool:
    return _PLAIN.get(a.type, a.type) == _PLAIN.get(b.type, b.type) and (
        a.namespace,
        a.data,
        a.id,
    ) == (b.namespace, b.data, b.id)


def _round_trip(packet: Packet, max_attachments: int) -> None:
    decoder = Decoder(max_attachments=max_attachments)
    again = None
    for message in encode(packet):
        again = decoder.feed(message)
    assert again is not None and _same(again, packet), (again, packet)


def one_input(data: bytes) -> None:
    """Feed the messages of ``data`` to one decoder, in order."""
    reader = Reader(data)
    max_attachments = reader.byte() % 12
    decoder = Decoder(max_attachments=max_attachments)
    for piece in reader.rest().split(b"\n"):
        message: str | bytes
        message = piece[1:] if piece[:1] == b"\x00" else piece.decode("utf-8", "replace")
        try:
            packet = decoder.feed(message)
        except SocketIOPacketError:
            assert decoder.awaiting_attachments == 0
            continue
        assert 0 <= decoder.awaiting_attachments <= max_attachments
        if packet is not None:
            assert packet.attachments <= max_attachments
            _round_trip(packet, max_attachments)


TARGET = Target("socketio", one_input, max_len=4096)
