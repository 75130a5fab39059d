"""The hub bounds the event handlers a client can have running (flow control), the same
way under tether's server and under uvicorn through the ASGI adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tether
from tether.engine import Session
from tether.realtime import Hub

from .serving import DEPLOYMENTS, serving, settle, wait_until

LIMIT = 10
BATCH = 5
EVENTS = 200


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
async def test_slow_handlers_hold_reading_and_lose_nothing(
    deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = Hub(max_pending_handlers=LIMIT)
    gate = asyncio.Event()
    started = running = peak = done = 0
    holds: list[bool] = []  # hold_reading calls that reached the transport

    real_hold = Session.hold_reading

    def spy(self: Session, held: bool) -> bool:
        reached = real_hold(self, held)
        if reached:
            holds.append(held)
        return reached

    monkeypatch.setattr(Session, "hold_reading", spy)

    @hub.on("work")
    async def work(socket: Any, n: int) -> None:
        nonlocal started, running, peak, done
        started += 1
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        done += 1

    async with serving(hub, deployment) as port:
        uri = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        async with tether.connect(uri, compression=None) as ws:
            assert str(await ws.recv()).startswith("0")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40")
            for batch in range(EVENTS // BATCH):
                for i in range(BATCH):
                    await ws.send(f'42["work",{batch * BATCH + i}]')
                if not holds:
                    # One batch at a time until the server holds reading, so that no read
                    # carries more than one batch past the bound.
                    sent = (batch + 1) * BATCH
                    await wait_until(lambda sent=sent: started >= sent or bool(holds))  # type: ignore[misc]
            await wait_until(lambda: bool(holds) and running >= LIMIT and ws.buffered_amount == 0)
            await settle()  # every event is on the server's side of the socket by now
            # Reading was held at the bound: the rest waits in TCP, not in tasks.
            assert holds[0] is True
            assert LIMIT <= peak < LIMIT + BATCH
            assert started < EVENTS
            gate.set()
            await wait_until(lambda: done == EVENTS)
            assert done == EVENTS
            assert False in holds  # reading resumed once half the handlers finished
