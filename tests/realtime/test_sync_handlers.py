"""Plain ``def`` handlers work on the hub as coroutines do: an event handler's return
value is the acknowledgement (a tuple for several arguments), a middleware and the
connect/disconnect handlers may be plain functions too, and an exception in a plain
handler is logged without an acknowledgement, the connection going on. They run on the
event loop, between packets of every client."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tether.exceptions import AckTimeout, ConnectError
from tether.realtime import Client, ConnectionRefused, Hub, Socket

from .serving import DEPLOYMENTS, serving, wait_until


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
async def test_a_plain_function_handler_answers_the_ack(deployment: str) -> None:
    hub = Hub()
    threads: list[int] = []

    @hub.on("add")
    def add(socket: Socket, a: int, b: int) -> int:
        threads.append(threading.get_ident())
        return a + b

    @hub.on("divmod")
    def div_mod(socket: Socket, a: int, b: int) -> tuple[int, int]:
        return divmod(a, b)  # a tuple: several acknowledgement arguments

    @hub.on("nothing")
    def nothing(socket: Socket) -> None:
        return None

    async with serving(hub, deployment) as port:
        client = Client(reconnection=False)
        await client.connect(f"http://127.0.0.1:{port}")
        assert await client.emit_with_ack("add", 2, 3, timeout=5) == 5
        assert await client.call("divmod", 17, 5, timeout=5) == (3, 2)
        assert await client.call("nothing", timeout=5) is None
        await client.disconnect()
    # It ran on the event loop's thread (the test's own), not in a worker thread.
    assert threads == [threading.get_ident()]


async def test_plain_function_middleware_connect_and_disconnect_handlers() -> None:
    hub = Hub()
    calls: list[Any] = []

    @hub.use
    def only_friends(socket: Socket, auth: Any) -> None:
        if (auth or {}).get("token") != "friend":
            raise ConnectionRefused("not authorized")

    @hub.event
    def connect(socket: Socket, auth: Any) -> None:
        socket.data["name"] = auth["name"]
        calls.append(("connect", auth["name"]))

    @hub.event
    def disconnect(socket: Socket, reason: str) -> None:
        calls.append(("disconnect", socket.data["name"], reason))

    @hub.event
    def whoami(socket: Socket) -> str:
        return str(socket.data["name"])

    async with hub.serve("127.0.0.1", 0) as server:
        url = f"http://127.0.0.1:{server.port}"
        stranger = Client(reconnection=False)
        with pytest.raises(ConnectError, match="not authorized"):
            await stranger.connect(url, auth={"token": "nope"})
        client = Client(reconnection=False)
        await client.connect(url, auth={"token": "friend", "name": "ada"})
        assert await client.call("whoami", timeout=5) == "ada"
        await client.disconnect()
        await wait_until(lambda: len(calls) == 2)
    assert calls == [("connect", "ada"), ("disconnect", "ada", "client namespace disconnect")]


async def test_an_exception_in_a_plain_handler_sends_no_ack_and_keeps_the_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub()

    @hub.on("fail")
    def fail(socket: Socket) -> str:
        raise RuntimeError("boom")

    @hub.on("ping")
    def ping(socket: Socket) -> str:
        return "pong"

    async with hub.serve("127.0.0.1", 0) as server:
        client = Client(reconnection=False)
        await client.connect(f"http://127.0.0.1:{server.port}")
        with pytest.raises(AckTimeout):
            await client.emit_with_ack("fail", timeout=0.5)
        assert await client.emit_with_ack("ping", timeout=5) == "pong"
        await client.disconnect()
    assert any("boom" in (r.exc_text or "") for r in caplog.records)


async def test_blocking_work_goes_to_a_thread_from_an_async_handler() -> None:
    # What the docs recommend for blocking calls: the loop keeps serving other clients.
    hub = Hub()
    release = threading.Event()

    def blocking_lookup(key: str) -> str:
        assert release.wait(5)
        return key.upper()

    @hub.on("lookup")
    async def lookup(socket: Socket, key: str) -> str:
        return await asyncio.to_thread(blocking_lookup, key)

    @hub.on("ping")
    def ping(socket: Socket) -> str:
        return "pong"

    async with hub.serve("127.0.0.1", 0) as server:
        client = Client(reconnection=False)
        await client.connect(f"http://127.0.0.1:{server.port}")
        pending = asyncio.ensure_future(client.emit_with_ack("lookup", "abc", timeout=5))
        # While the lookup blocks its thread, the hub still answers.
        assert await client.emit_with_ack("ping", timeout=5) == "pong"
        assert not pending.done()
        release.set()
        assert await pending == "ABC"
        await client.disconnect()
