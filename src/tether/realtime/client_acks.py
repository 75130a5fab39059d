"""The acknowledgements a Socket.IO client namespace awaits (client side).

Every emit that wants an answer gets the next ack id of its namespace and a
:class:`PendingAck` in that namespace's :class:`AckTable`. The server's ACK packet with the
same id settles it (the future gets the value, the callback the arguments); a timeout or a
lost connection settles it with an error instead.

An ack whose packet still waits in the namespace's buffer is not ``sent``: it survives a
disconnection, because the packet goes out on the next connection. One whose packet went
out is lost with the connection (:class:`~tether.exceptions.Disconnected`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["AckTable", "PendingAck", "ack_args", "ack_value"]


@dataclass(slots=True)
class PendingAck:
    """An acknowledgement being awaited.

    Attributes:
        callback: called with the acknowledgement's arguments (``emit(callback=...)``).
        future: gets the acknowledgement's value (``emit_with_ack``).
        sent: whether the event packet went out on the current connection.
        timer: the ``AckTimeout`` timer, if any.
    """

    callback: Callable[..., Any] | None
    future: asyncio.Future[Any] | None
    sent: bool = False
    timer: asyncio.TimerHandle | None = None

    def fail(self, exc: BaseException) -> None:
        """Settle with ``exc``: stop the timer and raise it in the awaiting caller."""
        if self.timer is not None:
            self.timer.cancel()
        if self.future is not None and not self.future.done():
            self.future.set_exception(exc)


class AckTable:
    """The acknowledgements one namespace awaits, by ack id."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._pending: dict[int, PendingAck] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def next_id(self) -> int:
        """A fresh ack id (ids are per namespace, from 0)."""
        return next(self._ids)

    def add(self, ack_id: int, pending: PendingAck) -> None:
        """Await an acknowledgement for ``ack_id``."""
        self._pending[ack_id] = pending

    def pop(self, ack_id: int) -> PendingAck | None:
        """Stop awaiting ``ack_id``; return what was awaited (None when nothing was)."""
        return self._pending.pop(ack_id, None)

    def mark_sent(self, ack_id: int | None) -> None:
        """The packet of ``ack_id`` went out on the current connection."""
        if ack_id is not None and ack_id in self._pending:
            self._pending[ack_id].sent = True

    def resolve(self, ack_id: int, args: list[Any]) -> PendingAck | None:
        """The server acknowledged ``ack_id`` with ``args``: settle its future.

        Returns:
            The settled ack (its callback is the caller's to run), or None for an ack that
            nobody awaits (late, after a timeout, or a duplicate).
        """
        pending = self._pending.pop(ack_id, None)
        if pending is None:
            return None
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(ack_value(args))
        return pending

    def fail_all(self, exc: BaseException, *, sent_only: bool = False) -> None:
        """Settle every awaited ack with ``exc`` (with ``sent_only``, only those whose
        packet went out: the buffered ones go out later and keep waiting)."""
        for ack_id, pending in list(self._pending.items()):
            if sent_only and not pending.sent:
                continue
            del self._pending[ack_id]
            pending.fail(exc)


def ack_value(args: list[Any]) -> Any:
    """The value an acknowledgement's arguments stand for: None for none, the argument for
    one, a tuple for several (what ``emit_with_ack`` returns)."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def ack_args(value: Any) -> list[Any]:
    """The inverse of :func:`ack_value`: the arguments of an acknowledgement whose value is
    ``value`` (a handler's return value, or the result of a retried emit)."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    return [value]
