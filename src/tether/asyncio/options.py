"""The options of a WebSocket connection, shared by the server and the client.

:func:`tether.serve` and :func:`tether.connect` take them as explicit keyword arguments
(so a type checker catches a misspelt one) and build one :class:`ConnectionOptions`, which
then makes every connection of that server or client.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.connection import DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_SIZE, Connection, Side
from ..protocol.deflate import DeflateOptions, PerMessageDeflate
from ..protocol.handshake import Request, Response
from .connection import WebSocket
from .limits import Rate

__all__ = ["Compression", "ConnectionOptions", "deflate_options"]

Compression = str | DeflateOptions | None
"""``"deflate"``, a :class:`DeflateOptions`, or None for no compression."""


def deflate_options(compression: Compression, side: Side) -> DeflateOptions | None:
    """Parse the ``compression`` argument of :func:`tether.serve` / :func:`tether.connect`.

    ``"deflate"`` means permessage-deflate (RFC 7692) with the defaults of each side: a
    server keeps memory per connection bounded (a 32 KiB window, ``mem_level=5``); a
    client offers the plain defaults and lets the server choose.

    Raises:
        ValueError: an unsupported value.
    """
    if compression is None or isinstance(compression, DeflateOptions):
        return compression
    if compression == "deflate":
        if side is Side.SERVER:
            return DeflateOptions(server_max_window_bits=15, mem_level=5)
        return DeflateOptions()
    raise ValueError(f"unsupported compression: {compression!r}")


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """What every connection of one server or client is made with.

    The defaults are the same on both sides, except ``deflate`` (see
    :func:`deflate_options`).

    Attributes:
        side: SERVER or CLIENT.
        deflate: the permessage-deflate parameters to offer or accept, or None.
        max_size: the largest incoming message in bytes (None: no limit); larger ones
            fail the connection with 1009.
        max_queue: incoming messages buffered before reading from the socket pauses.
        max_queue_bytes: incoming message bytes (after decompression) buffered before
            parsing and reading pause (4 MiB; None: no limit); a message in progress always
            completes, so one connection holds at most about ``max_queue_bytes +
            max_size`` of messages, whatever it sends (compressed or fragmented).
        write_limit: the outgoing buffer's high-water mark; ``send()`` waits above it.
        ping_interval: seconds between keepalive pings (None: off).
        ping_timeout: seconds to wait for a pong before closing with 1011 (None: off).
        open_timeout: server: seconds for a client to send a complete request (408
            after); client: seconds for the whole opening handshake (TCP, TLS, HTTP).
        close_timeout: seconds to wait for the closing handshake.
        message_rate: incoming messages per second per connection (a token bucket);
            past it the connection is closed with 1008. None: no limit.
    """

    side: Side
    deflate: DeflateOptions | None = None
    max_size: int | None = DEFAULT_MAX_SIZE
    max_queue: int = 32
    max_queue_bytes: int | None = DEFAULT_MAX_QUEUE_BYTES
    write_limit: int = 65536
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float | None = 10.0
    close_timeout: float = 10.0
    message_rate: Rate | None = None

    def websocket(
        self,
        codec: PerMessageDeflate | None,
        *,
        request: Request,
        response: Response,
        subprotocol: str | None,
    ) -> WebSocket:
        """A new :class:`WebSocket` once the opening handshake succeeded.

        Args:
            codec: the negotiated permessage-deflate codec, if any.
            request: the handshake request.
            response: the handshake response.
            subprotocol: the negotiated subprotocol, if any.
        """
        return WebSocket(
            Connection(
                self.side,
                max_size=self.max_size,
                deflate=codec,
                max_queue_bytes=self.max_queue_bytes,
            ),
            request=request,
            response=response,
            subprotocol=subprotocol,
            max_queue=self.max_queue,
            write_limit=self.write_limit,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            message_rate=self.message_rate,
        )
