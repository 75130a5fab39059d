"""Flow control both ways: a peer that does not read makes ``send()`` wait with a bounded
buffer, and a handler that does not read makes the server stop reading from the socket."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import tether
from tether.protocol import BinaryMessage

BOUND = 20.0
MESSAGE = 16 * 1024
WRITE_LIMIT = 64 * 1024
HEADER = 14  # the largest frame header (64-bit length and a mask)
COUNT = 4000  # 64 MiB: far more than the kernel buffers of a loopback connection


async def wait_until_stalled(progress: Callable[[], int], task: asyncio.Future[Any]) -> int:
    """Wait until ``progress()`` stops moving while ``task`` is still running."""
    last, still = -1, 0
    while still < 10:
        assert not task.done(), "the sender never had to wait"
        await asyncio.sleep(0.02)
        now = progress()
        still = still + 1 if now == last else 0
        last = now
    return last


async def test_send_waits_while_the_peer_does_not_read(serve_ws: Any, raw_ws: Any) -> None:
    state: dict[str, Any] = {"sent": 0, "max_buffered": 0}
    started: asyncio.Future[tether.WebSocket] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        transport = ws.transport
        assert transport is not None
        write = transport.write

        def measured_write(data: Any) -> None:
            write(data)
            state["max_buffered"] = max(state["max_buffered"], transport.get_write_buffer_size())

        transport.write = measured_write  # type: ignore[method-assign]
        state["task"] = asyncio.current_task()
        started.set_result(ws)
        for i in range(COUNT):
            await ws.send(i.to_bytes(4, "big") + os.urandom(MESSAGE - 4))
            state["sent"] += 1

    server = await serve_ws(handler, compression=None, write_limit=WRITE_LIMIT)
    async with asyncio.timeout(BOUND):
        peer = await raw_ws(server.port, rcvbuf=4096)
        ws = await started
        stalled_at = await wait_until_stalled(lambda: state["sent"], state["task"])
        assert stalled_at < COUNT
        assert ws.buffered_amount > 0
        # Memory cannot grow past the cap: the high-water mark plus the frame being written.
        assert ws.buffered_amount <= WRITE_LIMIT + MESSAGE + HEADER
        assert state["max_buffered"] <= WRITE_LIMIT + MESSAGE + HEADER

        # Once the peer reads, the sender resumes and every message arrives, in order.
        received = 0
        while received < COUNT:
            events = await peer.next_events()
            assert events, "connection closed early"
            for event in events:
                if received == COUNT:
                    break  # what follows is the closing handshake
                assert isinstance(event, BinaryMessage), event
                assert int.from_bytes(event.data[:4], "big") == received
                received += 1
        assert state["sent"] == COUNT
        assert state["max_buffered"] <= WRITE_LIMIT + MESSAGE + HEADER


async def test_server_stops_reading_while_the_handler_does_not_read(serve_ws: Any) -> None:
    go = asyncio.Event()
    received: list[bytes] = []

    async def handler(ws: tether.WebSocket) -> None:
        await go.wait()
        while len(received) < COUNT:
            message = await ws.recv()
            assert isinstance(message, bytes)
            received.append(message[:4])

    server = await serve_ws(handler, compression=None, max_queue=4)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(
            f"ws://127.0.0.1:{server.port}/", compression=None, write_limit=WRITE_LIMIT
        )
        state = {"sent": 0, "max_buffered": 0}

        async def send_all() -> None:
            for i in range(COUNT):
                await ws.send(i.to_bytes(4, "big") + bytes(MESSAGE - 4))
                state["sent"] += 1
                state["max_buffered"] = max(state["max_buffered"], ws.buffered_amount)

        sender = asyncio.ensure_future(send_all())
        try:
            stalled_at = await wait_until_stalled(lambda: state["sent"], sender)
            assert stalled_at < COUNT
            assert received == []
            # The server read a few messages, then stopped: the client's buffer filled up.
            assert ws.buffered_amount > 0
            assert state["max_buffered"] <= WRITE_LIMIT + MESSAGE + HEADER
            go.set()
            await sender
        finally:
            sender.cancel()
        while len(received) < COUNT:
            await asyncio.sleep(0.01)
        assert [int.from_bytes(r, "big") for r in received] == list(range(COUNT))
        await ws.close()
