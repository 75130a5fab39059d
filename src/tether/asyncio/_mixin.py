"""The base of the mixins that make up :class:`tether.asyncio.WebSocket`.

A connection is one object: :mod:`.messages`, :mod:`.sending` and :mod:`.keepalive` are
mixins of it, with no slots of their own (two bases with slots cannot be combined), so
``WebSocket`` declares every slot. For the type checker, this base names what all of
them use; each mixin names the rest of what it uses.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

from ..exceptions import ConnectionClosed
from ..protocol.connection import Connection

__all__ = ["WebSocketPart"]


class WebSocketPart:
    """One concept of :class:`~tether.asyncio.WebSocket` (a mixin of it)."""

    if not TYPE_CHECKING:
        __slots__ = ()  # mypy would check assignments against this empty tuple
    else:
        conn: Connection
        transport: asyncio.Transport | None
        _loop: asyncio.AbstractEventLoop
        _closed: asyncio.Future[None] | bool | None

        @property
        def log(self) -> Any: ...

        def _write(self, data: bytes) -> None: ...

        def _flush_conn(self) -> None: ...

        def _closed_future(self) -> asyncio.Future[None]:
            raise NotImplementedError

        def _raise_not_open(self) -> NoReturn:
            raise NotImplementedError

        def _closed_exception(self) -> ConnectionClosed:
            raise NotImplementedError
