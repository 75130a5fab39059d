"""The Python client's acknowledgements cannot pile up: bounded while a server does not
answer, and every one ends when the connection goes."""

from __future__ import annotations

import asyncio

import pytest

from tether.exceptions import BufferFull, Disconnected
from tether.realtime import Client, Hub

from .serving import WAIT, wait_until


async def test_unanswered_acks_are_bounded_and_fail_at_disconnect() -> None:
    hub = Hub()
    release = asyncio.Event()

    @hub.on("never")
    async def never(socket):  # type: ignore[no-untyped-def]
        await release.wait()  # never answers while the test runs
        return "late"

    async with hub.serve("127.0.0.1", 0, max_connections=None) as server:
        client = Client(reconnection=False, max_pending_acks=50)
        await client.connect(f"http://127.0.0.1:{server.port}", transports=["websocket"])
        waits = [asyncio.ensure_future(client.emit_with_ack("never")) for _ in range(50)]
        await asyncio.sleep(0.1)
        with pytest.raises(BufferFull, match="max_pending_acks=50"):
            await client.emit_with_ack("never")
        called: list[object] = []
        with pytest.raises(BufferFull):
            await client.emit("never", callback=lambda *a: called.append(a))
        # The server drops the connection: every awaited ack ends with Disconnected.
        for session in list(hub.engine.sessions.values()):
            session.close("forced server close")
        results = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), WAIT)
        assert all(isinstance(r, Disconnected) for r in results), results
        await wait_until(lambda: not client.connected)
        assert len(client.socket("/")._acks) == 0
        release.set()
        await client.disconnect()
