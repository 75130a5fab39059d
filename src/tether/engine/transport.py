"""What the engine needs from a WebSocket, and messages encoded once for many sessions.

The engine runs its WebSocket transport over anything that satisfies :class:`Transport`:
tether's own :class:`tether.WebSocket` (structurally, as it is) and the ASGI adapter's
WebSocket (:mod:`tether.asgi`). Both hold reading when the layer above asks, so flow
control behaves the same whichever server carries the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.connection import encode_server_frame
from ..protocol.handshake import Request

__all__ = ["FrameWriter", "PreparedMessage", "Transport"]


class Transport(Protocol):
    """A server-side WebSocket as the engine uses it.

    Messages arrive through ``on_message`` (a plain function, called for each message in
    order); ``recv`` is only used during the upgrade, before ``on_message`` is set.
    """

    @property
    def request(self) -> Request | None:
        """The handshake request."""

    @property
    def remote_address(self) -> Any:
        """The peer's address."""

    @property
    def extensions(self) -> str | None:
        """The negotiated extensions (``permessage-deflate...``), None for none."""

    @property
    def writable(self) -> bool:
        """Whether the outgoing buffer is under its high-water mark."""

    @property
    def on_message(self) -> Callable[[str | bytes], Any] | None:
        """The message callback."""

    @on_message.setter
    def on_message(self, callback: Callable[[str | bytes], Any] | None) -> None:
        """Deliver every further message to ``callback`` instead of :meth:`recv`."""

    def send_nowait(self, message: str | bytes, *, compress: bool | None = None) -> bool:
        """Write a message now; False when the caller should :meth:`drain` first."""

    async def send(self, message: str | bytes, *, compress: bool | None = None) -> None:
        """Write a message and wait while the outgoing buffer is full."""

    async def drain(self) -> None:
        """Wait until the outgoing buffer is under its high-water mark."""

    async def recv(self) -> str | bytes:
        """The next message (before ``on_message`` is set)."""

    def hold_reading(self, held: bool) -> None:
        """Stop (True) or resume (False) reading from the peer."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""


class FrameWriter(Protocol):
    """A transport that can also write an already encoded WebSocket frame as is.

    Optional: a transport without ``write_frame`` receives the message through
    :meth:`Transport.send_nowait` instead (the ASGI server frames it itself).
    """

    def write_frame(self, frame: bytes) -> None:
        """Write the bytes of one unmasked, uncompressed server frame."""


class PreparedMessage:
    """One Engine.IO MESSAGE encoded once, written to many sessions (a broadcast).

    Attributes:
        data: the message payload (``str`` or ``bytes``).
        frame: the WebSocket message carrying it (``"4" + data`` for text).
        wire: the uncompressed WebSocket frame of ``frame``, shared by every transport
            that can write it as is (:class:`FrameWriter`).
        compress: whether permessage-deflate may compress it (where negotiated).
    """

    __slots__ = ("compress", "data", "frame", "wire")

    def __init__(self, data: str | bytes, *, compress: bool = True) -> None:
        self.data = data
        self.frame: str | bytes = "4" + data if isinstance(data, str) else data
        self.wire = encode_server_frame(self.frame)
        self.compress = compress
