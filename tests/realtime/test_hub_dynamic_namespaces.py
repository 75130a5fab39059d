"""Dynamic namespaces are created on demand and freed when their last socket leaves:
clients can make them up by name, so keeping every one would grow without bound."""

from __future__ import annotations

import asyncio
import re

from tether.realtime import Client, Hub

WAIT = 10.0


async def test_an_empty_dynamic_namespace_is_freed() -> None:
    hub = Hub()
    seen: list[str] = []
    hub.of(re.compile(r"/room-[\w-]+")).on("hello")(
        lambda socket: seen.append(socket.namespace.name)
    )
    async with hub.serve("127.0.0.1", 0) as server:
        url = f"http://127.0.0.1:{server.port}"
        for round_ in range(3):
            names = [f"/room-{round_}-{i}" for i in range(20)]
            client = Client(reconnection=False)
            await client.connect(url, namespaces=["/", *names], transports=["websocket"])
            assert set(names) <= set(hub.namespaces)
            for name in names:
                await client.emit("hello", namespace=name)
            async with asyncio.timeout(WAIT):
                while len(seen) < 20 * (round_ + 1):
                    await asyncio.sleep(0.01)
            await client.disconnect()
            async with asyncio.timeout(WAIT):
                while set(names) & set(hub.namespaces):
                    await asyncio.sleep(0.01)
        # The static namespace stays; handlers still work for a name seen before.
        assert set(hub.namespaces) == {"/"}
        client = Client(reconnection=False)
        await client.connect(url, namespaces=["/room-0-0"], transports=["websocket"])
        await client.emit("hello", namespace="/room-0-0")
        async with asyncio.timeout(WAIT):
            while len(seen) < 61:
                await asyncio.sleep(0.01)
        await client.disconnect()
