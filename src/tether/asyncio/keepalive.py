"""Keepalive of the asyncio WebSocket: pings, pongs and their timeouts (RFC 6455 5.5.2-5.5.3).

Every ``ping_interval`` seconds the connection sends a ping; if no pong answers it within
``ping_timeout`` seconds the peer is taken as gone: the connection closes with 1011 without
waiting for the peer's close frame. ``ping()`` sends a ping and waits for its pong (the
round-trip time); a pong answers its ping and every earlier one.

This is a mixin of :class:`tether.asyncio.WebSocket`, not a separate object: the state lives
in the connection's own slots, so keepalive costs no extra object (nor memory) per
connection and no indirection. Timers are ``loop.call_later`` handles, never tasks.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectionClosed, ConnectionClosedError
from ..protocol.connection import State
from ._mixin import WebSocketPart

__all__ = ["Keepalive"]


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    # A keepalive ping has no waiter: mark its exception retrieved (no "never retrieved").
    if not fut.cancelled():
        fut.exception()


class Keepalive(WebSocketPart):
    """Ping/pong and keepalive timeouts, mixed into :class:`~tether.asyncio.WebSocket`."""

    if not TYPE_CHECKING:
        __slots__ = ()
    else:
        # More of WebSocket's slots and methods used here (see WebSocketPart).
        ping_interval: float | None
        ping_timeout: float | None
        close_timeout: float
        _pings: dict[bytes, tuple[asyncio.Future[float], float]] | None
        _keepalive: asyncio.TimerHandle | None
        _ping_deadline: asyncio.TimerHandle | None
        _close_timer: asyncio.TimerHandle | None
        _abnormal: BaseException | None

        def _abort(self) -> None: ...

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and wait for its pong.

        Returns:
            The round-trip time in seconds.

        Raises:
            ConnectionClosed: the connection closed before the pong came.
        """
        if self.conn.state is not State.OPEN or self.conn.close_sent is not None:
            self._raise_not_open()
        payload = data if data is not None else os.urandom(4)
        while self._pings is not None and payload in self._pings:
            payload = os.urandom(4)
        fut: asyncio.Future[float] = self._loop.create_future()
        self._send_ping(payload, fut)
        return await fut

    async def pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat, RFC 6455 5.5.3).

        Raises:
            ConnectionClosed: the connection is closed.
        """
        if self.conn.state is not State.OPEN or self.conn.close_sent is not None:
            self._raise_not_open()
        self.conn.send_pong(data)
        self._flush_conn()

    def _send_ping(self, payload: bytes, fut: asyncio.Future[float]) -> None:
        pings = self._pings
        if pings is None:
            pings = self._pings = {}  # made on the first ping: idle connections hold none
        pings[payload] = (fut, time.perf_counter())
        self.conn.send_ping(payload)
        self._flush_conn()

    def _on_pong(self, payload: bytes) -> None:
        pings = self._pings
        if pings is None or payload not in pings:
            return
        now = time.perf_counter()
        # A pong answers its ping and every earlier one (RFC 6455 5.5.3 allows coalescing).
        for key in list(pings):
            fut, sent_at = pings.pop(key)
            if not fut.done():
                fut.set_result(now - sent_at)
            if key == payload:
                break
        if self._ping_deadline is not None:
            self._ping_deadline.cancel()
            self._ping_deadline = None

    def _fail_pings(self, closed: ConnectionClosed) -> None:
        """The connection is closed: every ping still waiting fails with ``closed``."""
        pings = self._pings
        if pings is None:
            return
        for fut, _ in pings.values():
            if not fut.done():
                fut.set_exception(closed)
                fut.exception()  # mark retrieved
        pings.clear()

    def _schedule_keepalive(self) -> None:
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive = self._loop.call_later(self.ping_interval, self._keepalive_ping)

    def _keepalive_ping(self) -> None:
        self._keepalive = None
        if self.conn.state is not State.OPEN or self.conn.close_sent is not None:
            return
        if self._ping_deadline is None:  # one keepalive ping in flight at a time
            fut: asyncio.Future[float] = self._loop.create_future()
            fut.add_done_callback(_consume_exception)
            self._send_ping(os.urandom(4), fut)
            if self.ping_timeout is not None and self.ping_timeout > 0:
                self._ping_deadline = self._loop.call_later(
                    self.ping_timeout, self._keepalive_timeout
                )
        self._schedule_keepalive()

    def _keepalive_timeout(self) -> None:
        self._ping_deadline = None
        if self.conn.state is not State.OPEN:
            return
        self.log.info("no pong within %ss: closing with 1011", self.ping_timeout)
        self._abnormal = ConnectionClosedError(1011, "keepalive ping timeout")
        self.conn.send_close(1011, "keepalive ping timeout")
        self._flush_conn()
        # The peer is unresponsive: do not wait for its close frame (RFC 6455 7.1.1 lets
        # either end close TCP).
        if self.transport is not None:
            self.transport.close()
            self._close_timer = self._loop.call_later(self.close_timeout, self._abort)
