"""The browser-like API: on_message/on_close/on_error callbacks, ready_state, buffered_amount."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import tether
from tether.exceptions import ProtocolError

BOUND = 10.0
DELIVERY = 3.0  # two small messages on the loopback arrive well within this


def uri(server: tether.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


async def test_ready_state_values_match_the_whatwg_constants() -> None:
    assert tether.WebSocket.CONNECTING == 0
    assert tether.WebSocket.OPEN == 1
    assert tether.WebSocket.CLOSING == 2
    assert tether.WebSocket.CLOSED == 3


async def test_ready_state_goes_open_closing_closed(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.wait_closed()

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        assert ws.ready_state is tether.State.OPEN
        assert ws.state is tether.State.OPEN
        closing = asyncio.ensure_future(ws.close())
        await asyncio.sleep(0)  # close() has sent its close frame and now waits
        assert ws.ready_state is tether.State.CLOSING
        await closing
        assert ws.ready_state is tether.State.CLOSED


async def test_on_message_set_in_the_server_handler_receives_messages(serve_ws: Any) -> None:
    got: list[Any] = []
    done = asyncio.Event()

    async def handler(ws: tether.WebSocket) -> None:
        def on_message(data: Any) -> None:
            got.append(data)
            if len(got) == 2:
                done.set()

        ws.on_message = on_message
        await ws.wait_closed()

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        async with tether.connect(uri(server)) as ws:
            await ws.send("one")
            await ws.send(b"two")
            async with asyncio.timeout(DELIVERY):
                await done.wait()
    assert got == ["one", b"two"]


async def test_on_message_set_on_a_client_receives_messages(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.send("first")
        await ws.send("second")
        await ws.wait_closed()

    server = await serve_ws(handler)
    got: list[Any] = []
    done = asyncio.Event()

    async def on_message(data: Any) -> None:  # a coroutine callback is allowed too
        got.append(data)
        if len(got) == 2:
            done.set()

    async with asyncio.timeout(BOUND):
        async with tether.connect(uri(server)) as ws:
            ws.on_message = on_message
            async with asyncio.timeout(DELIVERY):
                await done.wait()
    assert got == ["first", "second"]


async def test_on_close_fires_with_code_and_reason_on_both_sides(serve_ws: Any) -> None:
    server_closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        ws.on_close = lambda code, reason: server_closed.set_result((code, reason))
        await ws.recv()
        await ws.close(4001, "see you")

    server = await serve_ws(handler)
    client_closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        ws.on_close = lambda code, reason: client_closed.set_result((code, reason))
        await ws.send("close please")
        assert await client_closed == (4001, "see you")
        assert await server_closed == (4001, "")  # the client echoed the code only


async def test_on_error_fires_with_the_protocol_error(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.recv()
        await ws.send(b"x" * 5000)
        await ws.wait_closed()

    server = await serve_ws(handler, compression=None)
    errors: list[BaseException] = []
    closed = asyncio.Event()
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server), max_size=1000, compression=None)
        ws.on_error = errors.append
        ws.on_close = lambda code, reason: closed.set()
        await ws.send("go")
        await closed.wait()
    assert len(errors) == 1
    assert isinstance(errors[0], ProtocolError)
    assert errors[0].code == 1009


async def test_buffered_amount_grows_when_the_peer_stops_reading(
    serve_ws: Any, raw_ws: Any
) -> None:
    opened: asyncio.Future[tether.WebSocket] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        opened.set_result(ws)
        await ws.wait_closed()

    server = await serve_ws(handler, compression=None)
    async with asyncio.timeout(BOUND):
        peer = await raw_ws(server.port, rcvbuf=4096)
        ws = await opened
        assert ws.buffered_amount == 0
        chunk = b"z" * 65536
        frame_size = len(chunk) + 10  # RFC 6455 5.2: 2 bytes + a 64-bit length
        # An open connection with nothing queued is writable: the frame is written (held
        # until the end of this loop turn, and counted meanwhile).
        assert tether.broadcast([ws], chunk) == 1
        assert ws.buffered_amount == frame_size
        # The peer reads nothing: each turn hands the frames to the transport, whose buffer
        # grows once the kernel's are full, until it passes write_limit.
        while True:
            await asyncio.sleep(0)  # the held frames go to the transport
            if not ws.writable:
                break
            assert tether.broadcast([ws], chunk) == 1
        assert ws.buffered_amount > 0
        # Over the high-water mark, broadcast skips the connection and counts the drop.
        assert ws.messages_dropped == 0
        assert tether.broadcast([ws], chunk) == 0
        assert ws.messages_dropped == 1
    peer.close()


async def test_an_async_callback_task_is_kept_until_it_finishes(serve_ws: Any) -> None:
    # The loop holds tasks only weakly: a callback task waiting on a future that nothing
    # else references would be garbage-collected mid-flight if tether dropped it.
    async def handler(ws: tether.WebSocket) -> None:
        await ws.wait_closed()

    server = await serve_ws(handler)
    loop = asyncio.get_running_loop()
    waiting: list[weakref.ref[asyncio.Future[None]]] = []
    started = asyncio.Event()
    finished = asyncio.Event()

    async def on_open() -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        waiting.append(weakref.ref(waiter))  # the test keeps only a weak reference
        started.set()
        await waiter
        finished.set()

    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server), on_open=on_open)
        await started.wait()
        gc.collect()
        waiter = waiting[0]()
        assert waiter is not None
        waiter.set_result(None)
        await finished.wait()
        await ws.close()


async def test_an_async_callback_failure_is_logged(serve_ws: Any, caplog: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.close(1000)

    async def on_close(code: int, reason: str) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom in on_close")

    server = await serve_ws(handler)
    caplog.set_level(logging.ERROR, logger="tether")
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server), on_close=on_close)
        await ws.wait_closed()
        while not any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records):
            await asyncio.sleep(0)
    record = next(r for r in caplog.records if r.exc_info)
    assert record.getMessage() == f"[{ws.id}] error in callback"
    assert record.conn_id == ws.id
