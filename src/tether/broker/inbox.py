"""The incoming side of a broker: recent ids, the bounded queue and its one worker.

The transport reader never runs user code: it puts messages on a queue of ``size``
items and, when the queue is full, drops the message and counts it in ``stats.dropped``
(the reader is never stalled, which is the python-socketio failure mode in
research/scaling-anchors.md). One worker takes the messages in order and calls their
handlers; a coroutine result is awaited for at most ``handler_timeout`` seconds, after
which it keeps running detached (counted in ``stats.slow_handlers``) and the worker moves
on, so one slow call delays the next by a bounded time. At most ``max_detached`` calls
run detached; past that the worker waits for one to finish (and the queue, not the
reader, absorbs the wait).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Callable
from typing import Any

from .base import Envelope
from .messages import Broadcast, RemoteCommand
from .stats import BrokerStats

__all__ = ["Inbox", "Item", "RecentIds"]

logger = logging.getLogger("tether.broker")

Item = tuple[Broadcast | RemoteCommand, None] | tuple[Envelope, str]
"""A message for ``on_message``, or an envelope with the plain channel it came on."""

Handler = Callable[[Any], Any]


class RecentIds:
    """A bounded set of recently seen message ids (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._order: collections.deque[str] = collections.deque()
        self._ids: set[str] = set()

    def seen(self, message_id: str) -> bool:
        """Record ``message_id``; return whether it was already there."""
        if message_id in self._ids:
            return True
        self._ids.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return False


class Inbox:
    """The bounded queue of incoming messages and the worker that hands them on.

    Args:
        size: the high-water mark of the queue (drop and count beyond it).
        handler_timeout: how long the worker waits for one handler coroutine.
        max_detached: handler calls that may outlive ``handler_timeout`` at once.
        stats: the broker's counters.
        handlers: the handlers of an item, asked when the worker takes it.
    """

    def __init__(
        self,
        size: int,
        handler_timeout: float,
        max_detached: int,
        stats: BrokerStats,
        handlers: Callable[[Item], list[Handler]],
    ) -> None:
        self._queue: asyncio.Queue[Item] = asyncio.Queue(size)
        self._handler_timeout = handler_timeout
        self._max_detached = max_detached
        self._stats = stats
        self._handlers = handlers
        self._worker: asyncio.Task[None] | None = None
        self._detached: set[asyncio.Task[Any]] = set()

    def start(self, name: str) -> None:
        """Start the worker (a task called ``name``)."""
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=name)

    def stop(self) -> None:
        """Cancel the worker (without waiting for it)."""
        if self._worker is not None:
            self._worker.cancel()

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """The worker and the detached handler calls (the broker stops them on close)."""
        worker = [self._worker] if self._worker is not None else []
        return [*worker, *self._detached]

    def put(self, item: Item) -> None:
        """Queue ``item``, or drop and count it when the queue is full (never blocks)."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._stats.dropped += 1
            if self._stats.dropped & (self._stats.dropped - 1) == 0:  # 1, 2, 4, 8...
                logger.warning("broker queue full: %d messages dropped", self._stats.dropped)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            for handler in self._handlers(item):
                await self._call(handler, item[0])

    async def _call(self, handler: Handler, message: Any) -> None:
        self._stats.delivered += 1
        try:
            result = handler(message)
        except Exception:
            self._stats.handler_errors += 1
            logger.exception("broker handler failed")
            return
        if not inspect.isawaitable(result):
            return
        task = asyncio.ensure_future(result)
        task.add_done_callback(self._handler_done)
        done, _ = await asyncio.wait({task}, timeout=self._handler_timeout)
        if done:
            return
        # Too slow: let it finish on its own and go on with the next message.
        self._stats.slow_handlers += 1
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)
        if len(self._detached) >= self._max_detached:
            await asyncio.wait(set(self._detached), return_when=asyncio.FIRST_COMPLETED)

    def _handler_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._stats.handler_errors += 1
            logger.error("broker handler failed", exc_info=task.exception())
