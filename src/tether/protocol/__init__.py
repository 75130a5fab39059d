"""Sans-I/O RFC 6455 WebSocket protocol (with RFC 7692 permessage-deflate).

Bytes in, events out; events in, bytes out. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from .connection import Connection, Side, State
from .deflate import DeflateOptions, PerMessageDeflate
from .events import (
    BinaryMessage,
    CloseReceived,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from .frames import CloseCode, Opcode, apply_mask, serialize_frame
from .handshake import (
    Headers,
    Request,
    Response,
    accept_key,
    build_client_request,
    check_client_response,
    server_accept,
)

__all__ = [
    "BinaryMessage",
    "CloseCode",
    "CloseReceived",
    "Connection",
    "DeflateOptions",
    "Event",
    "Headers",
    "Opcode",
    "PerMessageDeflate",
    "Ping",
    "Pong",
    "Request",
    "Response",
    "Side",
    "State",
    "TextMessage",
    "accept_key",
    "apply_mask",
    "build_client_request",
    "check_client_response",
    "serialize_frame",
    "server_accept",
]
