"""Engine.IO v4 packets and payloads, sans-I/O.

The wire format of the Engine.IO protocol, 4th revision (the ``EIO=4`` query parameter),
as described in the engine.io-protocol README. Nothing here does I/O or keeps time: the
session and transport modules call these functions with the text or bytes they read.

Packet encoding (README "Packet encoding")::

    <packet type>[<data>]              one packet per WebSocket frame
    4hello                             a text message
    <raw bytes>                        a binary message: a binary WebSocket frame, no type digit
    b<base64>                          a binary message where binary is not supported
                                       (HTTP long-polling, or a WebSocket opened with b64=1)

Payload encoding (HTTP long-polling), packets joined by the record separator ``\\x1e``::

    4hello\\x1e2\\x1ebAQIDBA==

Decoding is strict: an empty packet, an unknown type digit, bad base64 or a payload with
more packets than allowed raise :class:`EnginePacketError`; the session should then close
(the reference server closes with reason "parse error").
"""

from __future__ import annotations

import binascii
import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..exceptions import EnginePacketError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_PACKETS",
    "PROBE",
    "PROTOCOL_VERSION",
    "SEPARATOR",
    "EnginePacketError",
    "OpenPayload",
    "Packet",
    "PacketType",
    "decode_packet",
    "decode_payload",
    "encode_packet",
    "encode_payload",
]

#: The value of the ``EIO`` query parameter for this revision of the protocol.
PROTOCOL_VERSION = 4

#: The record separator between packets of an HTTP long-polling payload.
SEPARATOR = "\x1e"

#: The payload of the ``ping``/``pong`` packets exchanged while probing an upgrade.
PROBE = "probe"

#: Default bound on the number of packets in one long-polling payload. The byte size of a
#: payload is bounded by the transport (``maxPayload``); this bounds the number of objects
#: a small body can expand into.
DEFAULT_MAX_PAYLOAD_PACKETS = 4096


class PacketType(enum.IntEnum):
    """Engine.IO packet types (README "Protocol")."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


# Enum members read on every message, as module constants: on Python 3.11 each
# `Enum.MEMBER` lookup costs about 60 ns (EnumType.__getattr__ slows every class
# attribute lookup), a plain global about 10.
_EIO_CLOSE = PacketType.CLOSE
_EIO_MESSAGE = PacketType.MESSAGE
_EIO_NOOP = PacketType.NOOP
_EIO_OPEN = PacketType.OPEN
_EIO_PING = PacketType.PING
_EIO_PONG = PacketType.PONG
_EIO_UPGRADE = PacketType.UPGRADE


# Not frozen: these are made for every message, and a frozen dataclass costs three to four
# times as much to build (each field set through object.__setattr__). Treat them as read-only.
@dataclass(slots=True)
class Packet:
    """One Engine.IO packet.

    Attributes:
        type: the packet type.
        data: the payload: text, bytes (only for ``MESSAGE``) or None when absent.
    """

    type: PacketType
    data: str | bytes | None = None


_BINARY_TYPES = (bytes, bytearray, memoryview)
_DIGIT = tuple(str(int(t)) for t in PacketType)
_TYPE_BY_CHAR = {str(int(t)): t for t in PacketType}
# Packets without data are frequent (ping, pong, noop, upgrade): share one instance each.
_BARE = {t: Packet(t) for t in PacketType}
_EMPTY_MESSAGE = Packet(PacketType.MESSAGE, "")


def encode_packet(packet: Packet, *, binary_supported: bool) -> str | bytes:
    """Encode one packet.

    Args:
        packet: the packet to encode.
        binary_supported: True on a WebSocket that carries binary frames: a binary message
            is then returned as raw bytes, to be sent as a binary frame. False for HTTP
            long-polling (and for a WebSocket opened with ``b64=1``): binary becomes
            ``b`` + base64 text.

    Returns:
        The text of a text frame, or the bytes of a binary frame.

    Raises:
        ValueError: binary data in a packet other than ``MESSAGE``.
        TypeError: data that is neither text, bytes-like nor None.
    """
    data = packet.data
    if binary_supported and isinstance(data, _BINARY_TYPES):
        if packet.type is not _EIO_MESSAGE:
            raise ValueError(f"binary data is only allowed in MESSAGE packets, not {packet.type!r}")
        return data if type(data) is bytes else bytes(data)
    return _encode_text(packet)


def _encode_text(packet: Packet) -> str:
    data = packet.data
    if data is None:
        return _DIGIT[packet.type]
    if isinstance(data, str):
        return _DIGIT[packet.type] + data
    if isinstance(data, _BINARY_TYPES):
        if packet.type is not _EIO_MESSAGE:
            raise ValueError(f"binary data is only allowed in MESSAGE packets, not {packet.type!r}")
        # Protocol v4: binary is always base64 in a text payload, whatever the client.
        return "b" + binascii.b2a_base64(data, newline=False).decode("ascii")
    raise TypeError(f"packet data must be str, bytes or None, not {type(data).__name__}")


def decode_packet(data: str | bytes) -> Packet:
    """Decode one packet.

    A text frame (or one piece of a payload) is ``<type digit>[<data>]`` or ``b<base64>``;
    a binary frame is a binary ``MESSAGE`` as is. A text ``MESSAGE`` always has str data
    (``""`` when empty); other types without data have ``data=None``.

    Args:
        data: the text or bytes of one frame.

    Returns:
        The packet.

    Raises:
        EnginePacketError: empty text, an unknown type digit or invalid base64.
        TypeError: data that is neither str nor bytes-like.
    """
    if isinstance(data, str):
        if not data:
            raise EnginePacketError("empty packet")
        first = data[0]
        if first == "b":
            return Packet(_EIO_MESSAGE, _decode_base64(data[1:]))
        packet_type = _TYPE_BY_CHAR.get(first)
        if packet_type is None:
            raise EnginePacketError(f"unknown packet type {first!r}")
        if len(data) > 1:
            return Packet(packet_type, data[1:])
        if packet_type is _EIO_MESSAGE:
            return _EMPTY_MESSAGE
        return _BARE[packet_type]
    if isinstance(data, _BINARY_TYPES):
        return Packet(_EIO_MESSAGE, data if type(data) is bytes else bytes(data))
    raise TypeError(f"expected str or bytes, not {type(data).__name__}")


def _decode_base64(text: str) -> bytes:
    try:
        # strict_mode: padding is required and nothing may follow it.
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise EnginePacketError("invalid base64 in binary packet") from exc


def encode_payload(packets: Iterable[Packet]) -> str:
    """Encode packets as one HTTP long-polling payload (README "Packet encoding").

    Binary messages are always base64-encoded with the ``b`` prefix (protocol v4).

    Args:
        packets: one or more packets.

    Returns:
        The payload text, packets joined by ``\\x1e``.

    Raises:
        ValueError: no packets, text data containing the separator ``\\x1e`` (it would
            split the packet in two), or binary data outside a ``MESSAGE``.
        TypeError: packet data of an unsupported type.
    """
    parts: list[str] = []
    for packet in packets:
        encoded = _encode_text(packet)
        if SEPARATOR in encoded:
            raise ValueError("packet data contains the record separator \\x1e")
        parts.append(encoded)
    if not parts:
        raise ValueError("a payload holds at least one packet")
    return SEPARATOR.join(parts)


def decode_payload(
    payload: str | bytes, *, max_packets: int = DEFAULT_MAX_PAYLOAD_PACKETS
) -> list[Packet]:
    """Decode an HTTP long-polling payload.

    Args:
        payload: the request body; bytes are decoded as strict UTF-8.
        max_packets: the most packets accepted in one payload.

    Returns:
        The packets, in order.

    Raises:
        EnginePacketError: invalid UTF-8, more than ``max_packets`` packets, or any packet that
            :func:`decode_packet` rejects (an empty payload is an empty packet).
        ValueError: ``max_packets`` below 1.
    """
    if max_packets < 1:
        raise ValueError("max_packets must be at least 1")
    if not isinstance(payload, str):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnginePacketError("payload is not valid UTF-8") from exc
    # maxsplit bounds the work and memory before the count is checked.
    pieces = payload.split(SEPARATOR, max_packets)
    if len(pieces) > max_packets:
        raise EnginePacketError(f"payload holds more than {max_packets} packets")
    return [decode_packet(piece) for piece in pieces]


@dataclass(frozen=True, slots=True)
class OpenPayload:
    """The JSON data of the ``OPEN`` packet (README "Handshake").

    Attributes:
        sid: the session id; the client sends it back in the ``sid`` query parameter.
        upgrades: transports the client may upgrade to (``("websocket",)`` on polling,
            ``()`` on a WebSocket-only session).
        ping_interval: milliseconds between two pings sent by the server.
        ping_timeout: milliseconds the server waits for the pong.
        max_payload: the most bytes per payload the client should send; None when the
            server did not say (servers older than the field).
    """

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: int
    ping_timeout: int
    max_payload: int | None

    def to_json(self) -> str:
        """Return the JSON text, keys in the order the reference server writes them."""
        value: dict[str, Any] = {
            "sid": self.sid,
            "upgrades": list(self.upgrades),
            "pingInterval": self.ping_interval,
            "pingTimeout": self.ping_timeout,
        }
        if self.max_payload is not None:
            value["maxPayload"] = self.max_payload
        return json.dumps(value, separators=(",", ":"))

    def to_packet(self) -> Packet:
        """Return the ``OPEN`` packet carrying this payload."""
        return Packet(_EIO_OPEN, self.to_json())

    @classmethod
    def from_json(cls, text: str) -> OpenPayload:
        """Parse the data of an ``OPEN`` packet (client side). Unknown keys are ignored.

        Args:
            text: the packet data (without the leading ``0``).

        Returns:
            The parsed handshake.

        Raises:
            EnginePacketError: not a JSON object, or a field missing or of the wrong type.
        """
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise EnginePacketError("open packet data is not valid JSON") from exc
        if not isinstance(value, dict):
            raise EnginePacketError("open packet data is not a JSON object")
        sid = value.get("sid")
        if not isinstance(sid, str) or not sid:
            raise EnginePacketError("open packet: 'sid' must be a non-empty string")
        upgrades = value.get("upgrades", [])
        if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
            raise EnginePacketError("open packet: 'upgrades' must be a list of strings")
        max_payload = value.get("maxPayload")
        return cls(
            sid=sid,
            upgrades=tuple(upgrades),
            ping_interval=_non_negative_int(value, "pingInterval"),
            ping_timeout=_non_negative_int(value, "pingTimeout"),
            max_payload=None if max_payload is None else _non_negative_int(value, "maxPayload"),
        )


def _non_negative_int(value: dict[str, Any], key: str) -> int:
    item = value.get(key)
    if type(item) is not int or item < 0:
        raise EnginePacketError(f"open packet: {key!r} must be a non-negative integer")
    return item
