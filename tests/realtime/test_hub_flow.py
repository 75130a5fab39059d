"""The hub bounds the event handlers a client can have running (flow control)."""

from __future__ import annotations

import asyncio

import tether
from tether.realtime import Hub


async def test_slow_handlers_stop_reading_and_lose_nothing() -> None:
    hub = Hub(max_pending_handlers=10)
    gate = asyncio.Event()
    running = 0
    peak = 0
    done = 0

    @hub.on("work")
    async def work(socket: object, n: int) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        done += 1

    server = await hub.serve("127.0.0.1", 0)
    try:
        uri = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        async with tether.connect(uri, compression=None) as ws:
            assert str(await ws.recv()).startswith("0")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40")
            for batch in range(40):  # 200 events, 5 per write
                for i in range(5):
                    await ws.send(f'42["work",{batch * 5 + i}]')
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.2)
            # Reading stopped near the bound: the rest waits in TCP, not in tasks.
            assert peak <= 10 + 5
            gate.set()
            async with asyncio.timeout(10):
                while done < 200:
                    await asyncio.sleep(0.02)
            assert done == 200
    finally:
        server.close()
        await server.wait_closed()
