"""Lingering close: end a TCP connection without resetting it.

When a server closes a socket whose receive buffer still holds the peer's bytes (the rest
of an oversized message, a pipelined request, a frame sent after a protocol error), the
kernel answers with a TCP reset instead of a FIN, and a reset makes the peer's kernel drop
what it had received but not yet read: the close frame or the error response that says
*why* the connection ended is lost, and the peer sees "connection reset".

:func:`linger_close` does what HTTP servers have long done: half-close the connection
(everything written is flushed, then a FIN), keep reading and discarding what the peer still
sends, and close the socket when the peer closes its side, or after ``max_bytes`` or
``timeout``, whichever comes first. Memory stays flat (nothing read is kept) and the wait is
bounded. The transport is handed over: the protocol that owned it is done with it at once
(a WebSocket reports itself closed without waiting for the linger to end).
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["LINGER_BYTES", "LINGER_TIMEOUT", "linger_close"]

#: What a lingering connection may still read and discard before it is closed anyway.
LINGER_BYTES = 64 * 1024 * 1024
#: How long a lingering connection waits for the peer to close its side.
LINGER_TIMEOUT = 5.0


class _Lingering(asyncio.Protocol):
    """Stands in for the connection's protocol while it lingers: discards what arrives,
    closes on EOF, at the byte budget or at the deadline."""

    __slots__ = ("_budget", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, max_bytes: int, timeout: float) -> None:
        self._transport = transport
        self._budget = max_bytes
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        self._budget -= len(data)
        if self._budget < 0:
            # The peer keeps sending: it had its chance to read what we wrote.
            self._transport.abort()

    def eof_received(self) -> bool | None:
        return False  # the transport closes itself: both sides are done

    def _expire(self) -> None:
        # abort, not close: close() would wait for the write buffer to flush, and a peer
        # that reads nothing must not hold the socket open past the deadline.
        self._transport.abort()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


def linger_close(
    transport: asyncio.Transport,
    *,
    timeout: float = LINGER_TIMEOUT,
    max_bytes: int = LINGER_BYTES,
) -> None:
    """Close ``transport`` after what was written, without a TCP reset.

    Sends a FIN once the write buffer is flushed (where the transport can half-close; TLS
    cannot, and then only the reading goes on), reads and discards until the peer's EOF,
    ``max_bytes`` or ``timeout``, then closes. From then on the transport's former protocol
    gets no more callbacks (no ``connection_lost`` either): the caller treats its connection
    as closed now. Calling it on a closing transport does nothing.
    """
    if transport.is_closing():
        return
    lingering = _Lingering(transport, max_bytes, timeout)
    transport.set_protocol(lingering)
    if transport.can_write_eof():
        try:
            transport.write_eof()
        except (OSError, RuntimeError):
            transport.close()
            return
    with contextlib.suppress(RuntimeError, AttributeError):
        transport.resume_reading()
