"""The demo's live dashboard: a ticker that the server pushes at a high rate.

On the ``/ticker`` namespace, a price for each of a few symbols changes every few
milliseconds (a random walk) and is broadcast with the **coalesce** slow-consumer policy,
keyed by symbol: a client that keeps up sees every tick; a client that falls behind (a
slow phone, a background tab) gets only the latest price of each symbol instead of a
backlog, and the server holds at most one message per symbol for it. The pump runs only
while someone watches.

- ``GET /ticker`` serves ``static/ticker.html``;
- ``price [symbol, price, seq]``: one tick (``seq`` counts ticks of that symbol).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from ..realtime import Hub, Socket

__all__ = ["SYMBOLS", "Ticker"]

SYMBOLS = ("TTHR", "SOCK", "POLL", "WSKT", "ACKS", "ROOM")


class Ticker:
    """Pushes prices to ``/ticker`` every ``interval`` seconds while it has watchers."""

    def __init__(self, hub: Hub, interval: float = 0.005, seed: int | None = None) -> None:
        self.hub = hub
        self.interval = interval
        self.rng = random.Random(seed)
        self.prices = {symbol: 100.0 + 10 * i for i, symbol in enumerate(SYMBOLS)}
        self.seqs = dict.fromkeys(SYMBOLS, 0)
        self.task: asyncio.Task[None] | None = None
        ns = hub.of("/ticker")
        ns.on_connect()(self._watch)
        ns.on_disconnect()(self._unwatch)

    async def _watch(self, socket: Socket) -> None:
        # The current prices at once, then the ticks.
        for symbol, price in self.prices.items():
            await socket.emit("price", symbol, round(price, 2), self.seqs[symbol])
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._pump())

    async def _unwatch(self, socket: Socket) -> None:
        if not self.hub.of("/ticker").sockets and self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _pump(self) -> None:
        ns = self.hub.of("/ticker")
        while True:
            symbol = self.rng.choice(SYMBOLS)
            price = max(1.0, self.prices[symbol] * (1 + self.rng.gauss(0, 0.002)))
            self.prices[symbol] = price
            self.seqs[symbol] += 1
            await ns.coalesce(symbol).emit("price", symbol, round(price, 2), self.seqs[symbol])
            await asyncio.sleep(self.interval)

    def snapshot(self) -> dict[str, Any]:
        """The latest price and tick count of every symbol."""
        return {s: {"price": round(p, 2), "seq": self.seqs[s]} for s, p in self.prices.items()}
