"""Connect and disconnect handlers get the arguments they take: ``async def(socket)`` as
python-socketio users write it, or ``async def(socket, auth)`` / ``(socket, reason)``."""

from __future__ import annotations

from typing import Any

import pytest

from tether.exceptions import Disconnected
from tether.realtime import Client, Hub, Socket

from .serving import wait_until


async def test_handlers_with_or_without_the_second_argument() -> None:
    hub = Hub()
    calls: list[Any] = []

    @hub.on_connect()
    async def connected(socket: Socket) -> None:
        calls.append(("connect", socket.sid))

    @hub.on_connect()
    def connected_with_auth(socket: Socket, auth: Any) -> None:
        calls.append(("connect+auth", auth))

    @hub.on("disconnect")
    def gone(socket: Socket) -> None:
        calls.append(("disconnect",))

    @hub.on_disconnect()
    async def gone_with_reason(socket: Socket, reason: str) -> None:
        calls.append(("disconnect+reason", reason))

    async with hub.serve("127.0.0.1", 0) as server:
        client = Client(reconnection=False)
        await client.connect(f"http://127.0.0.1:{server.port}", auth={"token": "t"})
        await wait_until(lambda: len(calls) == 2)
        await client.disconnect()
        await wait_until(lambda: len(calls) == 4)
    (sid,) = {c[1] for c in calls if c[0] == "connect"}
    assert calls == [
        ("connect", sid),
        ("connect+auth", {"token": "t"}),
        ("disconnect",),
        ("disconnect+reason", "client namespace disconnect"),
    ]


def test_a_handler_that_cannot_take_the_socket_is_refused_at_once() -> None:
    hub = Hub()
    with pytest.raises(TypeError, match="socket"):
        hub.on_connect()(lambda: None)


async def test_hub_event_registers_by_name_and_hub_call_needs_a_local_socket() -> None:
    hub = Hub()

    @hub.event(namespace="/chat")
    async def hello(socket: Socket) -> str:
        return "hi"

    assert hub.of("/chat")._handlers["hello"] is hello
    with pytest.raises(TypeError, match="named function"):
        hub.event(lambda socket: None)
    with pytest.raises(Disconnected, match="no socket"):
        await hub.call("question", to="nobody")
    async with hub.serve("127.0.0.1", 0) as server:
        client = Client(reconnection=False)
        await client.connect(f"http://127.0.0.1:{server.port}", namespaces=["/chat"])
        assert await client.socket("/chat").call("hello", timeout=5) == "hi"
        await client.disconnect()
