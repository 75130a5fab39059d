"""Socket.IO v5 packets, sans-I/O.

The wire format of the Socket.IO protocol, 5th revision, with the default parser (the
socket.io-protocol README, "Packet encoding"). Each encoded string or attachment travels
in its own Engine.IO ``MESSAGE`` packet (see :mod:`tether.engine.packets`)::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]   then the attachments

    0                                   CONNECT to "/"
    0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}
    4{"message":"Not authorized"}       CONNECT_ERROR
    2["foo"]                            EVENT
    212["foo"]                          EVENT with ack id 12
    3/admin,13["bar"]                   ACK
    51-["baz",{"_placeholder":true,"num":0}]   BINARY_EVENT, then one binary attachment
    1/admin,                            DISCONNECT

Encoding: :func:`encode` serializes the payload with one C-accelerated ``json`` call. Bytes
anywhere in the payload of an EVENT or ACK are swapped for ``{"_placeholder":true,"num":n}``
during that same call and returned as attachments; the packet type then becomes
BINARY_EVENT or BINARY_ACK. Non-finite floats become ``null``, as with ``JSON.stringify``.

Decoding: :class:`Decoder` is a small state machine fed one Engine.IO message at a time.
It applies the validity rules of the reference parser (``socket.io-parser``) and of the
protocol test suite, and is stricter where the reference is lenient by accident
(see ``docs/topics/protocol-notes.md``):

- the type is one digit ``0``-``6``; the empty string is not a packet;
- the attachment count is ASCII digits then ``-``, only in BINARY_*; at most
  ``max_attachments``;
- a namespace starts with ``/`` and runs to the first ``,`` (or the end);
- an ack id is ASCII digits, at most 2**53 - 1, only in EVENT/ACK types, required in ACK;
- the payload is JSON (no ``NaN``/``Infinity``); CONNECT: an object or nothing;
  DISCONNECT: nothing; CONNECT_ERROR: an object or a string; EVENT: a non-empty array
  whose first element is a number or a string that is not a reserved event name;
  ACK: an array;
- a binary packet is followed by exactly its attachments; text in between is an error.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import SocketIOPacketError

__all__ = [
    "DEFAULT_MAX_ATTACHMENTS",
    "MAX_ACK_ID",
    "PROTOCOL_VERSION",
    "RESERVED_EVENTS",
    "Decoder",
    "Packet",
    "PacketType",
    "SocketIOPacketError",
    "encode",
    "encode_ack",
    "encode_event",
]

#: The revision of the Socket.IO protocol implemented here.
PROTOCOL_VERSION = 5

#: Default bound on the binary attachments of one packet (the reference parser's default).
DEFAULT_MAX_ATTACHMENTS = 10

#: The largest ack id: the largest integer a JavaScript peer holds exactly.
MAX_ACK_ID = 2**53 - 1

#: Event names with a meaning of their own; the reference parser rejects EVENT packets
#: that use them, and the reference server refuses to emit them.
RESERVED_EVENTS: frozenset[str] = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    }
)


class PacketType(enum.IntEnum):
    """Socket.IO packet types (README "Exchange protocol")."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


# Enum members read on every message, as module constants: on Python 3.11 each
# `Enum.MEMBER` lookup costs about 60 ns (EnumType.__getattr__ slows every class
# attribute lookup), a plain global about 10.
_SIO_ACK = PacketType.ACK
_SIO_BINARY_ACK = PacketType.BINARY_ACK
_SIO_BINARY_EVENT = PacketType.BINARY_EVENT
_SIO_CONNECT = PacketType.CONNECT
_SIO_CONNECT_ERROR = PacketType.CONNECT_ERROR
_SIO_DISCONNECT = PacketType.DISCONNECT
_SIO_EVENT = PacketType.EVENT


# Not frozen: these are made for every message, and a frozen dataclass costs three to four
# times as much to build (each field set through object.__setattr__). Treat them as read-only.
@dataclass(slots=True)
class Packet:
    """One Socket.IO packet.

    Attributes:
        type: the packet type.
        namespace: the namespace, ``"/"`` for the main one.
        data: the payload: a list for EVENT/ACK (may hold bytes anywhere), a dict for
            CONNECT, a dict or str for CONNECT_ERROR, None when absent.
        id: the ack id, or None.
        attachments: the number of binary attachments announced by a decoded BINARY_*
            packet; ignored by :func:`encode`, which counts them itself.
    """

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0


_BINARY_TYPES = (bytes, bytearray, memoryview)
_TYPE_BY_CHAR = {str(int(t)): t for t in PacketType}
_PLAIN_DIGIT = {PacketType.EVENT: "2", PacketType.ACK: "3"}
_DIGITS = re.compile(r"[0-9]+")
_MAX_ID_DIGITS = len(str(MAX_ACK_ID))
# An escaped UTF-16 surrogate; only then can json produce a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# --------------------------------------------------------------------------- encoding


class _HasBinary(Exception):
    """Raised from the fast encoder's ``default`` hook on the first bytes-like object."""


def _no_binary(value: object) -> object:
    if isinstance(value, _BINARY_TYPES):
        raise _HasBinary
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The fast path: one C-accelerated pass, no walk. check_circular is off (a cycle is local
# misuse and ends in RecursionError); allow_nan is off so that a non-finite float takes the
# slow path, which writes null like JSON.stringify.
def _json_encoder(default: Callable[[object], object]) -> json.JSONEncoder:
    """A compact JSON encoder (the shape socket.io writes) calling ``default`` for what
    JSON cannot hold."""
    return json.JSONEncoder(
        ensure_ascii=False,
        check_circular=False,
        allow_nan=False,
        separators=(",", ":"),
        default=default,
    )


_dumps = _json_encoder(_no_binary).encode


def _dumps_slow(data: Any) -> tuple[str, list[bytes]]:
    """Serialize ``data`` swapping bytes-like objects for placeholders."""
    buffers: list[bytes] = []

    def placeholder(value: object) -> object:
        if isinstance(value, _BINARY_TYPES):
            buffers.append(value if type(value) is bytes else bytes(value))
            return {"_placeholder": True, "num": len(buffers) - 1}
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    encoder = _json_encoder(placeholder)
    try:
        return encoder.encode(data), buffers
    except ValueError:
        buffers.clear()
        # Out-of-range floats (NaN, ±inf): JSON.stringify writes null.
        return encoder.encode(_finite(data)), buffers


def _finite(value: Any) -> Any:
    """Return a copy of ``value`` with NaN and infinities replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _serialize(data: Any) -> tuple[str, list[bytes]]:
    try:
        return _dumps(data), []
    except (_HasBinary, ValueError):
        return _dumps_slow(data)


def _check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"invalid namespace {namespace!r}: starts with '/', holds no ','")


def _check_id(ack_id: object) -> None:
    if type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID:
        raise ValueError(f"invalid ack id {ack_id!r}: an int from 0 to 2**53 - 1")


def _check_event_name(data: Sequence[Any]) -> None:
    if not data:
        raise ValueError("an EVENT payload is a non-empty list")
    name = data[0]
    if isinstance(name, str):
        if name in RESERVED_EVENTS:
            raise ValueError(f"{name!r} is a reserved event name")
    elif isinstance(name, bool) or not isinstance(name, int | float):
        raise ValueError("the event name (first element) must be a str or a number")


def _encode_args(
    plain: PacketType, namespace: str, ack_id: int | None, data: Sequence[Any]
) -> list[str | bytes]:
    """Encode an EVENT or ACK (BINARY_* when ``data`` holds bytes); arguments are checked."""
    body, buffers = _serialize(data)
    # EVENT (2) becomes BINARY_EVENT (5), ACK (3) becomes BINARY_ACK (6).
    head = f"{plain + 3}{len(buffers)}-" if buffers else _PLAIN_DIGIT[plain]
    if namespace != "/":
        head += namespace + ","
    if ack_id is not None:
        head += str(ack_id)
    if buffers:
        return [head + body, *buffers]
    return [head + body]


def encode(packet: Packet) -> list[str | bytes]:
    """Encode a packet as Engine.IO message payloads.

    EVENT and ACK (or BINARY_EVENT and BINARY_ACK: the two are the same to the encoder)
    come out as BINARY_* with their attachments when the payload holds bytes, and plain
    otherwise.

    Args:
        packet: the packet; ``packet.attachments`` is ignored.

    Returns:
        The text header first, then one bytes object per binary attachment.

    Raises:
        ValueError: a packet that breaks the rules the decoder enforces (namespace,
            ack id, payload shape, reserved event name).
        TypeError: a payload that JSON cannot represent, or bytes outside EVENT/ACK.
    """
    ptype = packet.type
    namespace = packet.namespace
    data = packet.data
    ack_id = packet.id
    _check_namespace(namespace)
    if ptype in (_SIO_EVENT, _SIO_BINARY_EVENT):
        if not isinstance(data, list | tuple):
            raise ValueError("an EVENT payload is a non-empty list")
        _check_event_name(data)
        if ack_id is not None:
            _check_id(ack_id)
        return _encode_args(_SIO_EVENT, namespace, ack_id, data)
    if ptype in (_SIO_ACK, _SIO_BINARY_ACK):
        if not isinstance(data, list | tuple):
            raise ValueError("an ACK payload is a list")
        _check_id(ack_id)
        return _encode_args(_SIO_ACK, namespace, ack_id, data)
    if ack_id is not None:
        raise ValueError(f"{ptype.name} packets carry no ack id")
    if ptype is _SIO_CONNECT:
        if data is not None and not isinstance(data, dict):
            raise ValueError("a CONNECT payload is a dict or None")
    elif ptype is _SIO_DISCONNECT:
        if data is not None:
            raise ValueError("a DISCONNECT packet has no payload")
    elif ptype is _SIO_CONNECT_ERROR:
        if not isinstance(data, dict | str):
            raise ValueError("a CONNECT_ERROR payload is a dict or a str")
    else:  # pragma: no cover - PacketType is closed
        raise ValueError(f"unknown packet type {ptype!r}")
    text = str(int(ptype))
    if namespace != "/":
        text += namespace + ","
    if data is not None:
        body, buffers = _serialize(data)
        if buffers:
            raise TypeError(f"bytes are only allowed in EVENT and ACK, not {ptype.name}")
        text += body
    return [text]


def encode_event(
    namespace: str, event: str, args: Sequence[Any] = (), ack_id: int | None = None
) -> list[str | bytes]:
    """Encode an EVENT (BINARY_EVENT when ``args`` hold bytes).

    Args:
        namespace: the namespace, ``"/"`` for the main one.
        event: the event name; not one of :data:`RESERVED_EVENTS`.
        args: the event arguments.
        ack_id: the ack id when the sender waits for an acknowledgement.

    Returns:
        The text header, then the binary attachments if any.

    Raises:
        ValueError: invalid namespace, event name or ack id.
        TypeError: arguments that JSON cannot represent.
    """
    _check_namespace(namespace)
    if not isinstance(event, str):
        raise ValueError("the event name must be a str")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")
    if ack_id is not None:
        _check_id(ack_id)
    return _encode_args(_SIO_EVENT, namespace, ack_id, [event, *args])


def encode_ack(namespace: str, ack_id: int, args: Sequence[Any] = ()) -> list[str | bytes]:
    """Encode an ACK (BINARY_ACK when ``args`` hold bytes).

    Args:
        namespace: the namespace of the acknowledged EVENT.
        ack_id: the id of the acknowledged EVENT.
        args: the acknowledgement arguments (possibly none).

    Returns:
        The text header, then the binary attachments if any.

    Raises:
        ValueError: invalid namespace or ack id.
        TypeError: arguments that JSON cannot represent.
    """
    _check_namespace(namespace)
    _check_id(ack_id)
    return _encode_args(_SIO_ACK, namespace, ack_id, args if isinstance(args, list) else list(args))


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# JSON.parse rejects NaN and Infinity; so do we. The C scanner is kept.
_loads = json.JSONDecoder(parse_constant=_reject_constant).decode


def _is_event_name(name: object) -> bool:
    if isinstance(name, str):
        return name not in RESERVED_EVENTS
    return isinstance(name, int | float) and not isinstance(name, bool)


def _valid_payload(ptype: PacketType, data: Any) -> bool:
    if ptype is _SIO_EVENT or ptype is _SIO_BINARY_EVENT:
        return type(data) is list and len(data) > 0 and _is_event_name(data[0])
    if ptype is _SIO_ACK or ptype is _SIO_BINARY_ACK:
        return type(data) is list
    if ptype is _SIO_CONNECT:
        return data is None or type(data) is dict
    if ptype is _SIO_CONNECT_ERROR:
        return type(data) is dict or type(data) is str
    return data is None  # DISCONNECT


def _parse(text: str, max_attachments: int) -> Packet:
    """Parse the text form of a packet (header + JSON), without attachments."""
    end = len(text)
    if not end:
        raise SocketIOPacketError("empty packet")
    if end > 2 and text[0] == "2" and text[1] == "[":
        # The common case first: an EVENT to "/" without an ack id (same checks).
        payload = text[1:]
        try:
            data = _loads(payload)
        except (ValueError, RecursionError) as exc:
            raise SocketIOPacketError("invalid JSON payload") from exc
        if "\\u" in payload and _SURROGATE_ESCAPE.search(payload):
            _check_utf8(data)
        if not _valid_payload(_SIO_EVENT, data):
            raise SocketIOPacketError("invalid payload for EVENT")
        return Packet(_SIO_EVENT, "/", data, None, 0)
    ptype = _TYPE_BY_CHAR.get(text[0])
    if ptype is None:
        raise SocketIOPacketError(f"unknown packet type {text[0]!r}")
    pos = 1
    attachments = 0
    binary = ptype is _SIO_BINARY_EVENT or ptype is _SIO_BINARY_ACK
    if binary:
        match = _DIGITS.match(text, pos)
        if match is None or match.end() >= end or text[match.end()] != "-":
            raise SocketIOPacketError("illegal attachments")
        count = match.group()
        if len(count) > 10 or int(count) > max_attachments:
            raise SocketIOPacketError(f"too many attachments (limit {max_attachments})")
        attachments = int(count)
        pos = match.end() + 1
    namespace = "/"
    if pos < end and text[pos] == "/":
        comma = text.find(",", pos)
        if comma < 0:
            namespace = text[pos:]
            pos = end
        else:
            namespace = text[pos:comma]
            pos = comma + 1
    ack_id = None
    if ptype is not _SIO_CONNECT and ptype is not _SIO_DISCONNECT:
        match = _DIGITS.match(text, pos)
        if match is not None:
            digits = match.group()
            if ptype is _SIO_CONNECT_ERROR:
                raise SocketIOPacketError("CONNECT_ERROR packets carry no ack id")
            if len(digits) > _MAX_ID_DIGITS or int(digits) > MAX_ACK_ID:
                raise SocketIOPacketError("ack id out of range")
            ack_id = int(digits)
            pos = match.end()
        elif ptype is _SIO_ACK or ptype is _SIO_BINARY_ACK:
            raise SocketIOPacketError("ACK without an ack id")
    data = None
    if pos < end:
        payload = text[pos:]
        try:
            data = _loads(payload)
        except (ValueError, RecursionError) as exc:
            raise SocketIOPacketError("invalid JSON payload") from exc
        if data is None:
            # A JSON null is never a valid payload (and must not pass for "absent").
            raise SocketIOPacketError(f"invalid payload for {ptype.name}")
        if "\\u" in payload and _SURROGATE_ESCAPE.search(payload):
            _check_utf8(data)
    if not _valid_payload(ptype, data):
        raise SocketIOPacketError(f"invalid payload for {ptype.name}")
    return Packet(ptype, namespace, data, ack_id, attachments)


def _check_utf8(data: Any) -> None:
    """Reject a payload holding a lone surrogate: it has no UTF-8 form to relay."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SocketIOPacketError("lone UTF-16 surrogate in payload") from exc


def _fill_placeholders(data: list[Any], buffers: list[bytes]) -> None:
    """Swap each placeholder object in ``data`` for its attachment, in place."""
    count = len(buffers)
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        items: Iterable[tuple[Any, Any]] = enumerate(node) if type(node) is list else node.items()
        for key, value in items:
            kind = type(value)
            if kind is dict:
                if value.get("_placeholder") is True:
                    num = value.get("num")
                    if type(num) is not int or not 0 <= num < count:
                        raise SocketIOPacketError("illegal attachment placeholder")
                    node[key] = buffers[num]  # same size: safe while iterating
                else:
                    stack.append(value)
            elif kind is list:
                stack.append(value)


class Decoder:
    """Reassemble Socket.IO packets from Engine.IO messages.

    Feed every Engine.IO ``MESSAGE`` payload in order. A BINARY_* header is held until
    its attachments have arrived; then the packet comes out with the bytes in place of
    the placeholders. After a :class:`SocketIOPacketError` the decoder is reset; the connection
    should be closed (the reference server closes the Engine.IO session).

    Args:
        max_attachments: the most binary attachments accepted in one packet.
    """

    __slots__ = ("_buffers", "_max_attachments", "_pending")

    def __init__(self, *, max_attachments: int = DEFAULT_MAX_ATTACHMENTS) -> None:
        if max_attachments < 0:
            raise ValueError("max_attachments must be non-negative")
        self._max_attachments = max_attachments
        self._pending: Packet | None = None
        self._buffers: list[bytes] = []

    @property
    def awaiting_attachments(self) -> int:
        """How many attachments the packet being reassembled still waits for (0 if none)."""
        pending = self._pending
        return 0 if pending is None else pending.attachments - len(self._buffers)

    def reset(self) -> None:
        """Drop a packet being reassembled."""
        self._pending = None
        self._buffers = []

    def feed(self, data: str | bytes) -> Packet | None:
        """Take one Engine.IO message payload.

        Args:
            data: the text of a packet, or the bytes of an attachment.

        Returns:
            The complete packet, or None while attachments are still expected.

        Raises:
            SocketIOPacketError: malformed text, a packet that breaks the rules above, bytes when
                no attachment is expected, or text while one is.
            TypeError: data that is neither str nor bytes-like.
        """
        if isinstance(data, str):
            if self._pending is not None:
                self.reset()
                raise SocketIOPacketError("text packet while waiting for binary attachments")
            packet = _parse(data, self._max_attachments)
            if packet.attachments:
                self._pending = packet
                return None
            return packet
        if isinstance(data, _BINARY_TYPES):
            pending = self._pending
            if pending is None:
                raise SocketIOPacketError("binary data while no attachment is expected")
            buffers = self._buffers
            buffers.append(data if type(data) is bytes else bytes(data))
            if len(buffers) < pending.attachments:
                return None
            self.reset()
            _fill_placeholders(pending.data, buffers)
            return pending
        raise TypeError(f"expected str or bytes, not {type(data).__name__}")
