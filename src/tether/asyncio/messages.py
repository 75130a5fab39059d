"""The incoming message queue of the asyncio WebSocket, and its two ways of delivery.

Messages wait in a queue of at most ``max_queue`` messages and ``max_queue_bytes`` bytes
(characters for text; a message in progress always completes); when it is full the transport
stops reading from the socket (TCP pushes back on the peer), and reading resumes once the
queue drops to a quarter of that (hysteresis, so a consumer at the limit does not flip
reading on and off for every message). Delivery is either pulled (``recv()``, ``async for``)
or pushed to the browser-like ``on_message`` callback: a plain function is called right in
``data_received`` with no queue; a coroutine function is fed by one task that drains this
queue, so reading still pauses while callbacks run.

This is a mixin of :class:`tether.asyncio.WebSocket`, not a separate object: the queue is a
slot of the connection (a plain list, smaller than a deque at this bound), so it costs no
extra object per connection and no indirection on the hot path, which stays in
``WebSocket.data_received``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from ..exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidState
from ..protocol.connection import _CLOSED
from ._mixin import WebSocketPart

__all__ = ["Data", "MessageQueue"]

Data = str | bytes


class MessageQueue(WebSocketPart):
    """The bounded incoming queue, mixed into :class:`~tether.asyncio.WebSocket`."""

    if not TYPE_CHECKING:
        __slots__ = ()
    else:
        # More of WebSocket's slots and methods used here (see WebSocketPart).
        max_queue: int
        max_queue_bytes: int
        _queued_bytes: int
        _messages: list[Data]
        _recv_waiter: asyncio.Future[None] | None
        _reading_paused: bool
        _held: bool
        _on_message: Callable[[Data], Any] | None
        _direct: Callable[[Data], Any] | None
        _pump: asyncio.Task[None] | None

        def _apply_failure(self) -> None: ...

        def _resume_parsing(self) -> None: ...

        def _fire(self, name: str, *args: Any) -> None: ...

        def _track(self, task: asyncio.Future[Any]) -> None: ...

    # ------------------------------------------------------------------ pulled: recv

    async def recv(self) -> Data:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosedOK: the connection closed normally and no message is left.
            ConnectionClosedError: the connection closed with an error.
            InvalidState: another coroutine is already waiting in ``recv()``.
        """
        while not self._messages:
            waiter = self._waiter()
            try:
                await waiter
            finally:
                if self._recv_waiter is waiter:
                    self._recv_waiter = None
        return self._take()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Data:
        """``async for message in ws``: ends on a normal close, raises on an error close."""
        # recv() written out again rather than awaited: an idle connection then keeps
        # one coroutine, not two, and a message costs one less.
        while not self._messages:
            try:
                waiter = self._waiter()
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
            try:
                await waiter
            finally:
                if self._recv_waiter is waiter:
                    self._recv_waiter = None
        return self._take()

    def _waiter(self) -> asyncio.Future[Any]:
        """What to wait on while no message is queued.

        Raises:
            ConnectionClosed: the connection is closed and no message is left.
            InvalidState: another coroutine is already waiting for a message.
        """
        conn = self.conn
        if conn.pending_failure is not None:
            self._apply_failure()
        if self._closed is True or conn.state is _CLOSED:
            raise self._closed_exception()
        if conn.close_rcvd is not None or conn.failure is not None:
            return asyncio.shield(self._closed_future())  # closing: wait for the end
        if self._recv_waiter is not None:
            raise InvalidState("another coroutine is already waiting for a message")
        waiter = self._recv_waiter = self._loop.create_future()
        return waiter

    def _take(self) -> Data:
        message = self._messages.pop(0)
        self.conn.held_bytes = self._queued_bytes = self._queued_bytes - len(message)
        if self._reading_paused:
            self._resume_parsing()
        return message

    # ------------------------------------------------------------------ pushed: on_message

    @property
    def on_message(self) -> Callable[[Data], Any] | None:
        """Browser-like ``on_message(data)`` callback (sync or async).

        Setting it on an open connection starts delivering messages to it, in order
        (instead of to :meth:`recv`); reading still pauses while a callback runs, so the
        incoming queue stays bounded.
        """
        return self._on_message

    @on_message.setter
    def on_message(self, callback: Callable[[Data], Any] | None) -> None:
        self._on_message = callback
        if callback is not None and not inspect.iscoroutinefunction(callback):
            self._direct = callback
            while self._messages:  # hand over what was already queued, in order
                callback(self._messages.pop(0))
            self._queued_bytes = self.conn.held_bytes = 0
            return
        self._direct = None
        if (
            callback is not None
            and self._pump is None
            and self.transport is not None
            and self._closed is not True
        ):
            self._pump = self._loop.create_task(self._pump_messages())
            self._track(self._pump)

    async def _pump_messages(self) -> None:
        try:
            async for message in self:
                callback = self._on_message
                if callback is None:
                    continue
                try:
                    result = callback(message)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self.log.exception("error in on_message callback")
                    self._fire("on_error", exc)
        except ConnectionClosedError:
            pass
