"""The outgoing side of the asyncio WebSocket: sending, write coalescing, backpressure.

``await ws.send()`` writes the frame, then waits while the transport's write buffer is
above ``write_limit`` (the high-water mark), so a peer that never reads cannot grow the
sender's memory past about ``write_limit`` plus one message. ``send_nowait`` and
``write_frame`` are for layers with a bounded queue of their own: they tell whether the
buffer is still under the mark. Frames written with ``_write_later`` in one event-loop
turn leave in one system call. :func:`broadcast` encodes a message once for many
server connections.

:class:`Sender` is a mixin of :class:`tether.asyncio.WebSocket`, not a separate object:
its state lives in the connection's own slots (no extra object, nor memory, per
connection; no indirection on the hot path).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidState
from ..protocol.connection import _OPEN, encode_server_frame
from ._mixin import WebSocketPart
from .messages import Data

if TYPE_CHECKING:
    from .connection import WebSocket

__all__ = ["Sender", "broadcast"]


class Sender(WebSocketPart):
    """Sending and outgoing flow control, mixed into :class:`~tether.asyncio.WebSocket`."""

    if not TYPE_CHECKING:
        __slots__ = ()
    else:
        # More of WebSocket's slots and methods used here (see WebSocketPart).
        write_limit: int
        _cork: list[bytes] | None
        _cork_size: int
        _drain_waiter: asyncio.Future[None] | None
        _send_lock: asyncio.Lock | None
        _writing_paused: bool

    async def send(
        self, message: Data | AsyncIterable[Data] | Iterable[Data], *, compress: bool | None = None
    ) -> None:
        """Send a message, waiting while the outgoing buffer is above the high-water mark.

        Args:
            message: ``str`` (text), ``bytes`` (binary), or an (async) iterable of
                fragments of one type, sent as one fragmented message.
            compress: force permessage-deflate on or off for this message.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            InvalidState: the connection is still opening.
            TypeError: a message of another type.
        """
        conn = self.conn
        if isinstance(message, (str, bytes)):
            if self._send_lock is not None and self._send_lock.locked():
                async with self._send_lock:
                    self._send_one(message, compress)
            else:
                self._send_one(message, compress)
        elif isinstance(message, (bytearray, memoryview)):
            self._send_one(bytes(message), compress)
        elif isinstance(message, (AsyncIterable, Iterable)) and not isinstance(message, dict):
            await self._send_fragments(message, compress)  # type: ignore[arg-type]
            return
        else:
            raise TypeError(f"cannot send {type(message).__name__}")
        if self._writing_paused and conn.state is _OPEN:
            await self._drain()

    def send_nowait(self, message: Data, *, compress: bool | None = None) -> bool:
        """Write a message without waiting for backpressure.

        For layers that keep their own bounded queue (the engine): the return value tells
        whether the outgoing buffer is still under the high-water mark.

        Returns:
            False when the caller should wait (see :meth:`drain`) before writing more.

        Raises:
            ConnectionClosed: the connection is closed or closing.
        """
        self._send_one(message, compress)
        return self.writable

    def write_frame(self, frame: bytes) -> None:
        """Write an already encoded, unmasked, uncompressed server frame as is.

        For broadcasts that encode a message once for many connections (see
        :func:`broadcast`); the caller checks :attr:`writable` for backpressure.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            InvalidState: a client connection (it must mask), or a fragmented send is
                in progress.
        """
        conn = self.conn
        if conn.state is not _OPEN or conn.close_sent is not None:
            self._raise_not_open()
        if conn._is_client or conn._send_opcode:
            raise InvalidState("cannot write a shared frame on this connection now")
        self._write_later(frame)

    @property
    def writable(self) -> bool:
        """Whether the outgoing buffer is under the high-water mark."""
        return not self._writing_paused and self._cork_size < self.write_limit

    def _flush_conn(self) -> None:
        """Write what the sans-I/O connection has queued (control frames, fragments)."""
        for out in self.conn.data_to_send():
            self._write(out)

    def _write(self, data: bytes) -> None:
        """Write now, after whatever :meth:`_write_later` still holds (order is kept)."""
        if self._cork is not None:
            self._flush_cork()
        self.transport.write(data)  # type: ignore[union-attr]

    def _write_later(self, data: bytes) -> None:
        """Write at the end of this event-loop turn, joined with the turn's other frames.

        A burst of frames for one connection (a broadcast loop, an engine flush) then
        costs one system call instead of one per frame. Bounded: callers check
        :attr:`writable`, which counts these bytes.
        """
        cork = self._cork
        if cork is None:
            self._cork = [data]
            self._cork_size = len(data)
            self._loop.call_soon(self._flush_cork)
        else:
            cork.append(data)
            self._cork_size += len(data)

    def _flush_cork(self) -> None:
        cork = self._cork
        if cork is None:
            return
        self._cork = None
        self._cork_size = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(cork[0] if len(cork) == 1 else b"".join(cork))

    async def drain(self) -> None:
        """Wait until the outgoing buffer is under the high-water mark.

        Raises:
            ConnectionClosed: the connection closed while waiting.
        """
        if self._writing_paused:
            await self._drain()

    def _send_one(self, message: Data, compress: bool | None) -> None:
        try:
            frame = self.conn.encode_message(message, compress=compress)
        except InvalidState:
            self._raise_not_open()
            raise
        self._write(frame)

    async def _send_fragments(
        self, fragments: AsyncIterable[Data] | Iterable[Data], compress: bool | None
    ) -> None:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        async with self._send_lock:
            iterator: Any
            if isinstance(fragments, AsyncIterable):
                iterator = fragments.__aiter__()

                async def next_fragment() -> Data | None:
                    try:
                        return await iterator.__anext__()  # type: ignore[no-any-return]
                    except StopAsyncIteration:
                        return None
            else:
                sync_iterator = iter(fragments)

                async def next_fragment() -> Data | None:
                    return next(sync_iterator, None)

            current = await next_fragment()
            if current is None:
                return
            kind = type(current)
            while current is not None:
                following = await next_fragment()
                if not isinstance(current, (str, bytes)):
                    raise TypeError("fragments must be str or bytes")
                if type(current) is not kind:
                    raise TypeError("all fragments of a message must be of the same type")
                if self.conn.state is not _OPEN or self.conn.close_sent is not None:
                    self._raise_not_open()
                self.conn.send_fragment(current, fin=following is None, compress=compress)
                self._flush_conn()
                if self._writing_paused:
                    await self._drain()
                current = following

    async def _drain(self) -> None:
        while self._writing_paused and self._closed is not True:
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self._loop.create_future()
            await asyncio.shield(self._drain_waiter)
        if self._closed is True and self.conn.close_rcvd is None:
            raise self._closed_exception()


def broadcast(connections: Iterable[WebSocket], message: Data) -> int:
    """Send ``message`` to every open connection without waiting.

    Server-side frames are encoded once and the same bytes are written to every
    recipient. Backpressure is respected: a recipient whose write buffer is above its
    high-water mark (or that is sending a fragmented message) is skipped, and its
    ``messages_dropped`` counter grows. Use ``await ws.send()`` per connection when every
    message must arrive.

    Returns:
        How many connections the message was written to.
    """
    frame: bytes | None = None
    sent = 0
    for ws in connections:
        conn = ws.conn
        if conn.state is not _OPEN or conn.close_sent is not None or ws.transport is None:
            continue
        if not ws.writable or conn._send_opcode:
            ws.messages_dropped += 1
            continue
        if conn._is_client:
            conn.send_message(message, compress=False)
            for out in conn.data_to_send():
                ws._write(out)
        else:
            if frame is None:
                frame = encode_server_frame(message)
            ws._write_later(frame)  # a burst of broadcasts leaves in one write
        sent += 1
    return sent
