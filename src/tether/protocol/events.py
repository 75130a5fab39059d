"""Events produced by :class:`tether.protocol.Connection`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BinaryMessage", "CloseReceived", "Event", "Ping", "Pong", "TextMessage"]


# Not frozen: these are made for every message, and a frozen dataclass costs three to four
# times as much to build (each field set through object.__setattr__). Treat them as read-only.
@dataclass(slots=True)
class TextMessage:
    """A complete text message (UTF-8 validated)."""

    data: str


@dataclass(slots=True)
class BinaryMessage:
    """A complete binary message."""

    data: bytes


@dataclass(slots=True)
class Ping:
    """A ping from the peer; the connection has already queued the pong."""

    payload: bytes


@dataclass(slots=True)
class Pong:
    """A pong from the peer."""

    payload: bytes


@dataclass(slots=True)
class CloseReceived:
    """The peer sent a close frame (code 1005 when it carried no code)."""

    code: int
    reason: str


Event = TextMessage | BinaryMessage | Ping | Pong | CloseReceived
