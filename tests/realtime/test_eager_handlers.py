"""Event handlers start eagerly: a coroutine handler runs at once, up to its first
suspension, in a copy of the context (as a task would); one that never suspends is done
without a task and its acknowledgement goes out at once; one that suspends goes on in a
task, which awaits what the handler awaits, takes cancellation, and still counts against
``max_pending_handlers``."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest

from tether.exceptions import AckTimeout
from tether.realtime import Client, Hub, Socket

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def _client(hub: Hub) -> tuple[Client, Any]:
    server = await hub.serve("127.0.0.1", 0)
    client = Client(reconnection=False)
    await client.connect(f"http://127.0.0.1:{server.port}", transports=["websocket"])
    return client, server


async def test_a_handler_that_never_suspends_needs_no_task() -> None:
    hub = Hub()
    pending: list[int] = []

    @hub.on("add")
    async def add(socket: Socket, a: int, b: int) -> int:
        pending.append(len(hub._tasks))  # while it runs
        return a + b

    client, server = await _client(hub)
    try:
        assert await client.call("add", 2, 3, timeout=5) == 5
        assert await client.call("add", 4, 5, timeout=5) == 9
        assert pending == [0, 0]  # no task was made for it
    finally:
        await client.disconnect()
        server.close()
        await server.wait_closed()


async def test_a_handler_that_suspends_goes_on_in_a_task() -> None:
    hub = Hub()
    steps: list[str] = []
    release = asyncio.Event()

    @hub.on("slow")
    async def slow(socket: Socket, value: int) -> int:
        steps.append("started")
        await release.wait()  # a future: the task waits on it
        steps.append("woken")
        await asyncio.sleep(0)  # a bare yield: the task runs it again
        steps.append("done")
        return value * 2

    client, server = await _client(hub)
    try:
        answer = asyncio.ensure_future(client.call("slow", 21, timeout=5))
        async with asyncio.timeout(5):
            while steps != ["started"]:
                await asyncio.sleep(0.01)
        assert len(hub._tasks) == 1
        release.set()
        assert await answer == 42
        assert steps == ["started", "woken", "done"]
    finally:
        await client.disconnect()
        server.close()
        await server.wait_closed()


async def test_errors_context_and_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    seen: list[str] = []
    cancelled = asyncio.Event()

    @hub.on("boom")
    async def boom(socket: Socket) -> None:
        raise RuntimeError("boom")

    @hub.on("late-boom")
    async def late_boom(socket: Socket) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("late boom")

    @hub.on("context")
    async def context(socket: Socket) -> str:
        WHO.set("handler")  # in the handler's own copy of the context
        await asyncio.sleep(0.01)
        return WHO.get()

    @hub.on("forever")
    async def forever(socket: Socket) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @hub.on("who")
    def who(socket: Socket) -> str:
        seen.append(WHO.get())
        return WHO.get()

    client, server = await _client(hub)
    try:
        with caplog.at_level(logging.ERROR, logger="tether.realtime"):
            with pytest.raises(AckTimeout):
                await client.call("boom", timeout=0.5)  # no ack for a handler that raised
            with pytest.raises(AckTimeout):
                await client.call("late-boom", timeout=0.5)
        assert "boom" in caplog.text and "late boom" in caplog.text
        assert await client.call("context", timeout=5) == "handler"
        assert await client.call("who", timeout=5) == "nobody"  # nothing leaked out
        await client.emit("forever")
        async with asyncio.timeout(5):
            while not hub._tasks:
                await asyncio.sleep(0.01)
        hub._close_timeout = 0.2  # the hub cancels handlers still running when it closes
    finally:
        await client.disconnect()
        server.close()
        await server.wait_closed()
    await asyncio.wait_for(cancelled.wait(), 5)  # thrown into the handler through its task
    assert seen == ["nobody"]
