"""The at-least-once emit queue of a Socket.IO client namespace (``Client(retries=N)``).

With ``retries`` on, every emit of a namespace goes through its :class:`RetryQueue`: it is
sent with an acknowledgement and resent up to ``retries`` times when none comes within the
client's ``ack_timeout`` or the connection drops first. One emit is in flight at a time per
namespace, so the order of the emits is kept, as in socket.io-client's ``retries`` option.
The queue holds at most ``max_buffered`` emits (then :class:`~tether.exceptions.BufferFull`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import AckTimeout, BufferFull, Disconnected

if TYPE_CHECKING:
    from .client_socket import NamespaceSocket

__all__ = ["RetryQueue"]

# The client's logger: the split into modules is no concern of the application's logging.
logger = logging.getLogger("tether.realtime.client")


@dataclass(slots=True)
class _Queued:
    """An emit of the queue."""

    event: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    tries: int = 0


class RetryQueue:
    """The emits of one namespace awaiting their acknowledgement, sent one at a time.

    Args:
        socket: the namespace socket that sends them.
    """

    def __init__(self, socket: NamespaceSocket) -> None:
        self._socket = socket
        self._items: collections.deque[_Queued] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue an emit; the future gets the acknowledgement's value, or the last error
        (:class:`~tether.exceptions.AckTimeout`, :class:`~tether.exceptions.Disconnected`)
        once the tries are spent. Cancelling the future withdraws the emit.

        Raises:
            BufferFull: ``max_buffered`` emits already wait.
        """
        socket = self._socket
        limit = socket.client.max_buffered
        if len(self._items) >= limit:
            raise BufferFull(
                f"{socket.namespace}: {len(self._items)} emits already wait for their"
                f" acknowledgement (max_buffered={limit})"
            )
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._items.append(_Queued(event, args, fut))
        if self._task is None or self._task.done():
            self._task = socket.client._spawn(self._drain())
        return fut

    async def _drain(self) -> None:
        socket = self._socket
        client = socket.client
        items = self._items
        while items:
            item = items[0]
            if item.future.done():  # the caller gave up
                items.popleft()
                continue
            await socket._wait_connected()
            item.tries += 1
            try:
                value = await socket.emit_with_ack_once(item.event, item.args, client.ack_timeout)
            except (AckTimeout, Disconnected) as exc:
                if item.tries > client.retries:
                    items.popleft()
                    if not item.future.done():
                        item.future.set_exception(exc)
                else:
                    logger.debug("%s: retrying %r (%s)", socket.namespace, item.event, exc)
                continue
            items.popleft()
            if not item.future.done():
                item.future.set_result(value)
