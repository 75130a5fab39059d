"""RFC 6455 section 5: opcodes, close codes, frame serialization and masking."""

from __future__ import annotations

import enum
import os
import struct

__all__ = [
    "SPEEDUPS",
    "CloseCode",
    "MaskSource",
    "Opcode",
    "apply_mask",
    "encode_server_frame",
    "is_valid_close_code",
    "parse_small_frame",
    "py_apply_mask",
    "py_encode_server_frame",
    "py_parse_small_frame",
    "serialize_close",
    "serialize_frame",
]


class Opcode(enum.IntEnum):
    """RFC 6455 5.2 opcodes."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """RFC 6455 7.4.1 status codes (plus the IANA-registered 1012-1014)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


_VALID_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (RFC 6455 7.4)."""
    # 1004, 1005, 1006 and 1015 are reserved and never sent; 1016-2999 are unassigned;
    # 3000-3999 are registered with IANA and 4000-4999 are for private use.
    return code in _VALID_CODES or 3000 <= code <= 4999


_PACK_H = struct.Struct("!BB").pack
_PACK_H16 = struct.Struct("!BBH").pack
_PACK_H64 = struct.Struct("!BBQ").pack
_FROM = int.from_bytes


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes, /) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3).

    Pure Python: one big-integer XOR, linear time, done in C by the interpreter.
    """
    n = len(data)
    if n == 0:
        return b""
    full = mask * ((n >> 2) + 1)
    return (_FROM(data, "little") ^ _FROM(full[:n], "little")).to_bytes(n, "little")


py_apply_mask = apply_mask

# The compiled twin, when the package was built with it (TETHER_PURE_PYTHON=1 skips it).
if os.environ.get("TETHER_PURE_PYTHON") != "1":
    try:
        from tether import _speedups
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:  # pragma: no cover
        apply_mask = _speedups.apply_mask

#: Whether the compiled accelerator is in use.
SPEEDUPS = apply_mask is not py_apply_mask


def serialize_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """Return the bytes of one frame (RFC 6455 5.2).

    Args:
        opcode: the frame opcode.
        payload: the payload, unmasked.
        fin: the FIN bit.
        rsv1: the RSV1 bit (set by permessage-deflate on the first frame of a message).
        mask: a 4-byte masking key (clients) or None (servers).

    Raises:
        ValueError: ``mask`` is not 4 bytes long.
    """
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if n < 126:
        header = _PACK_H(b0, m | n)
    elif n < 65536:
        header = _PACK_H16(b0, m | 126, n)
    else:
        header = _PACK_H64(b0, m | 127, n)
    if mask is None:
        return header + payload
    if len(mask) != 4:
        raise ValueError("the masking key must be 4 bytes")
    return header + mask + apply_mask(payload, mask)


def serialize_close(code: int | None, reason: str = "") -> bytes:
    """Return the payload of a close frame (RFC 6455 5.5.1).

    Raises:
        ValueError: a reason without a code, an invalid code, or a payload over 125 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code}")
    data = code.to_bytes(2, "big") + reason.encode()
    if len(data) > 125:
        raise ValueError("close reason too long (a close payload is at most 125 bytes)")
    return data


class MaskSource:
    """Unpredictable 4-byte masking keys (RFC 6455 5.3), drawn from os.urandom in bulk."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def __call__(self) -> bytes:
        pos = self._pos
        if pos + 4 > len(self._buf):
            self._buf = os.urandom(4096)
            pos = 0
        self._pos = pos + 4
        return self._buf[pos : pos + 4]


def encode_server_frame(data: str | bytes | bytearray | memoryview, /) -> bytes:
    """One unmasked, uncompressed, final data frame for ``data`` (str: text, bytes: binary)."""
    if isinstance(data, str):
        return serialize_frame(Opcode.TEXT, data.encode())
    if data.__class__ is not bytes:
        data = memoryview(data).tobytes()  # a TypeError for what is not a buffer
    return serialize_frame(Opcode.BINARY, data)


def parse_small_frame(
    data: bytes | bytearray | memoryview, masked: bool, limit: int, /
) -> str | bytes | None:
    """The message of ``data`` if it is exactly one small frame that needs no state.

    That is one final, uncompressed text or binary frame (no RSV bit) with a payload of at
    most 125 bytes and at most ``limit``, masked if and only if ``masked``, and valid UTF-8
    for text. Anything else, errors included, gives None: the caller's general parser
    decides (see ``Connection.receive_data``).
    """
    n = len(data)
    if n < 2:
        return None
    b0 = data[0]
    if b0 != 0x81 and b0 != 0x82:  # FIN, no RSV bits, text or binary
        return None
    b1 = data[1]
    length = b1 & 0x7F
    if length > 125 or length > limit:
        return None
    if masked:
        if not b1 & 0x80 or n != 6 + length:
            return None
        payload = apply_mask(data[6:], bytes(data[2:6]))
    else:
        if b1 & 0x80 or n != 2 + length:
            return None
        payload = bytes(data[2:])
    if b0 == 0x82:
        return payload
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None


py_encode_server_frame = encode_server_frame
py_parse_small_frame = parse_small_frame

# The compiled twins, when the package was built with them (TETHER_PURE_PYTHON=1 skips them).
if SPEEDUPS:  # pragma: no cover - depends on the build
    encode_server_frame = _speedups.encode_server_frame
    parse_small_frame = _speedups.parse_small_frame
