"""The one exception tree of tether.

Every exception tether raises is a :class:`TetherError`; where a builtin means the same,
the tether class subclasses it too (``ValueError``, ``ConnectionError``, ``TimeoutError``),
so ``except ConnectionError`` still works. ::

    TetherError
    ├── ProtocolError                 the peer broke RFC 6455 / RFC 7692 (kept as the cause)
    │   └── PayloadTooBig             a message or frame over the configured limit
    ├── HTTPError                     malformed or oversized HTTP input (has .status)
    ├── HTTPConnectionError           an HTTP client connection failed (also ConnectionError)
    ├── PacketError (ValueError)      a malformed packet from the peer
    │   ├── EnginePacketError         ... an Engine.IO packet or payload
    │   └── SocketIOPacketError       ... a Socket.IO packet
    ├── InvalidHandshake              the opening handshake failed
    │   ├── InvalidRequest            server side: the request cannot be upgraded (has .status)
    │   ├── InvalidStatus             client side: the server answered something other than 101
    │   ├── InvalidResponse           client side: a 101 that breaks the rules (bad Accept, ...)
    │   └── NegotiationError          extensions or subprotocols could not be agreed
    ├── ConnectionClosed              the WebSocket is closed (has .code, .reason)
    │   ├── ConnectionClosedOK        ... with 1000 or 1001 on both sides
    │   └── ConnectionClosedError     ... any other way (the cause is kept as __cause__)
    ├── EngineConnectionError         an Engine.IO client transport failed (also ConnectionError)
    ├── ConnectError                  a Socket.IO connection or namespace could not be opened
    │                                 (also ConnectionError)
    ├── Disconnected                  a Socket.IO socket is disconnected: emitting on it, or an
    │                                 acknowledgement awaited when it went (both sides; also
    │                                 ConnectionError)
    ├── ConnectionRefused             raised by a hub middleware: refuse the connection
    ├── BufferFull                    the client's emit buffer is full
    ├── LimitExceeded                 a configured limit refuses this (rooms per socket, ...)
    ├── InvalidOption (ValueError)    an option given a value it cannot take
    ├── InvalidState                  local misuse: an operation not allowed in this state
    ├── InvalidURI (ValueError)       a URI that is not ws:// or wss://
    ├── InvalidInput (ValueError)     a command-line input line that cannot be parsed
    └── TimeoutError                  also a builtin TimeoutError
        ├── OpenTimeout               the opening handshake did not finish in time
        ├── CloseTimeout              the closing handshake did not finish in time
        └── AckTimeout                a Socket.IO acknowledgement did not come in time
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AckTimeout",
    "BufferFull",
    "CloseTimeout",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionRefused",
    "Disconnected",
    "EngineConnectionError",
    "EnginePacketError",
    "HTTPConnectionError",
    "HTTPError",
    "InvalidHandshake",
    "InvalidInput",
    "InvalidOption",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "LimitExceeded",
    "NegotiationError",
    "OpenTimeout",
    "PacketError",
    "PayloadTooBig",
    "ProtocolError",
    "SocketIOPacketError",
    "TetherError",
    "TimeoutError",
]


class TetherError(Exception):
    """Base class of every exception raised by tether."""


class ProtocolError(TetherError):
    """The peer violated the protocol.

    Attributes:
        code: the close code the connection was failed with (1002, 1007, 1009, ...).
    """

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooBig(ProtocolError):
    """A message or frame is larger than the configured limit (close code 1009).

    Attributes:
        partial: for a decompressed message, the inflated bytes that fit the limit.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)
        self.partial = b""


class HTTPError(TetherError):
    """Malformed or oversized HTTP input.

    Attributes:
        status: the HTTP status to answer with (400, 413, 431, ...).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class HTTPConnectionError(TetherError, ConnectionError):
    """An HTTP client connection failed: unreachable server, or the connection was lost
    before the whole response arrived."""


class PacketError(TetherError, ValueError):
    """A malformed packet received from the peer."""


class EnginePacketError(PacketError):
    """A malformed Engine.IO packet or payload."""


class SocketIOPacketError(PacketError):
    """A malformed Socket.IO packet."""


class InvalidHandshake(TetherError):
    """The opening handshake failed."""


class InvalidRequest(InvalidHandshake):
    """The server cannot upgrade this request.

    Attributes:
        status: the HTTP status to answer with (400, 403, 426, ...).
        headers: extra response headers.
    """

    def __init__(
        self, message: str, status: int = 400, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


class InvalidStatus(InvalidHandshake):
    """The server answered the upgrade request with something other than 101.

    Attributes:
        status: the HTTP status code.
        headers: the response headers as a list of (name, value).
        body: the response body (possibly truncated to a safe size).
    """

    def __init__(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        super().__init__(f"server rejected the WebSocket connection: HTTP {status}")
        self.status = status
        self.headers = list(headers)
        self.body = body


class InvalidResponse(InvalidHandshake):
    """The server answered 101 but broke the handshake rules."""


class NegotiationError(InvalidHandshake):
    """Extensions or subprotocols could not be negotiated."""


class ConnectionClosed(TetherError):
    """The connection is closed.

    Attributes:
        code: the close code received from the peer (1006 when none was received).
        reason: the close reason received from the peer.
        sent_code: the close code this side sent, or None.
    """

    def __init__(self, code: int, reason: str, sent_code: int | None = None) -> None:
        self.code = code
        self.reason = reason
        self.sent_code = sent_code
        text = f"connection closed: code {code}"
        if reason:
            text += f" ({reason})"
        super().__init__(text)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed abnormally or with an error code."""


class EngineConnectionError(TetherError, ConnectionError):
    """An Engine.IO client transport failed: unreachable server, refused handshake, lost
    HTTP connection.

    Attributes:
        status: the HTTP status when the server answered one, else None.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectError(TetherError, ConnectionError):
    """The connection could not be established, or the server refused a namespace.

    Attributes:
        namespace: the refused namespace, or None when the server was unreachable.
        data: the server's CONNECT_ERROR payload (``{"message": ...}``), or None.
    """

    def __init__(self, message: str, namespace: str | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.data = data


class Disconnected(TetherError, ConnectionError):
    """A Socket.IO socket is disconnected: an emit on it, or an acknowledgement that was
    awaited when it went. Raised on the server (:class:`~tether.realtime.Socket`) and on
    the client alike."""


class ConnectionRefused(TetherError):
    """Raise from a middleware to refuse a connection (CONNECT_ERROR to the client).

    Args:
        message: sent to the client as ``err.message``.
        data: optional JSON data sent as ``err.data``.
    """

    def __init__(self, message: str = "Connection rejected by server", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class BufferFull(TetherError):
    """The emit buffer of a namespace that is not connected is full (``max_buffered``)."""


class LimitExceeded(TetherError):
    """A configured limit refuses the operation (rooms per socket, pending acks, ...)."""


class InvalidOption(TetherError, ValueError):
    """An option (a limit, a rate, a policy) given a value it cannot take."""


class InvalidState(TetherError):
    """An operation is not allowed in the current state (local misuse)."""


class InvalidURI(TetherError, ValueError):
    """A URI that is not a valid ws:// or wss:// URI."""


class InvalidInput(TetherError, ValueError):
    """A line typed to ``tether connect --sio`` that is not ``NAME [JSON]``."""


class TimeoutError(TetherError, builtins.TimeoutError):
    """A tether timeout; also a builtin TimeoutError."""


class OpenTimeout(TimeoutError):
    """The opening handshake did not complete in time."""


class CloseTimeout(TimeoutError):
    """The closing handshake did not complete in time."""


class AckTimeout(TimeoutError):
    """A Socket.IO acknowledgement did not come in time."""
