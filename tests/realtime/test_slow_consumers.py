"""Slow-consumer policies end to end: a client that stops reading (its TCP window fills,
then the server's write buffer, then its outbox) under each policy, chosen per emit, per
namespace or per hub; across two nodes; and one such client among 500 during a
broadcast storm (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

import tether
from tether.broker import MemoryBroker, MemoryCluster
from tether.engine import Session, SessionState
from tether.exceptions import InvalidOption
from tether.realtime import Hub

from .serving import WAIT, settle, wait_until

PAD = "p" * 16384
CAP = 128 * 1024


def _ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"


async def sio_connect(port: int) -> Any:
    """A raw WebSocket connected to "/" (Engine.IO open and CONNECT reply read)."""
    ws = await tether.connect(_ws_url(port), compression=None)
    assert str(await ws.recv()).startswith("0")
    await ws.send("40")
    reply = str(await asyncio.wait_for(ws.recv(), WAIT))
    assert reply.startswith("40{"), reply
    return ws


def events(messages: list[str]) -> list[list[Any]]:
    """The events (``[name, *args]``) among raw Engine.IO messages."""
    return [json.loads(m[2:]) for m in messages if m.startswith("42")]


async def read_until(ws: Any, done: Any) -> list[str]:
    """Read raw messages until ``done(messages)`` (answering pings), bounded."""
    messages: list[str] = []
    async with asyncio.timeout(WAIT):
        while not done(messages):
            message = str(await ws.recv())
            if message == "2":
                await ws.send("3")
                continue
            messages.append(message)
    return messages


async def fill(hub: Hub, session: Session, emit: Any, *, limit: int = 20000) -> int:
    """Emit until the session's outbox holds something (the client is behind)."""
    for n in range(limit):
        await emit(n)
        if session.outbox:
            return n + 1
        if n % 16 == 0:
            await asyncio.sleep(0)  # let the transport report backpressure
    raise AssertionError("the outbox never filled")


def dropped(hub: Hub, policy: str) -> float:
    return hub.metrics.get("tether_outbox_dropped_total", policy=policy)


@contextlib.asynccontextmanager
async def slow_client(hub: Hub, **serve: Any) -> Any:
    async with hub.serve("127.0.0.1", 0, write_limit=4096, **serve) as server:
        ws = await sio_connect(server.port)
        await wait_until(lambda: len(hub.sockets) == 1)
        (socket,) = hub.sockets.values()
        ws.hold_reading(True)  # the client stops reading
        try:
            yield ws, socket, socket.session
        finally:
            ws.hold_reading(False)  # so the closing handshakes complete at once
            with contextlib.suppress(tether.ConnectionClosed):
                await ws.close()


async def test_disconnect_is_the_default_at_the_byte_cap() -> None:
    hub = Hub(max_buffered_bytes=CAP, max_buffered_packets=100_000)
    async with slow_client(hub) as (_, socket, session):
        peak = 0
        async with asyncio.timeout(WAIT):
            while session.state is SessionState.OPEN:
                await socket.emit("big", PAD)
                peak = max(peak, session.outbox.bytes)
                await asyncio.sleep(0)
        assert 0 < peak <= CAP
        assert session.closed_reason == "transport error"
        assert hub.metrics.get("tether_slow_consumer_disconnects_total", policy="disconnect") == 1


async def test_drop_oldest_per_namespace_keeps_the_newest_under_the_cap() -> None:
    hub = Hub(max_buffered_bytes=CAP, max_buffered_packets=100_000)
    hub.of("/").slow_consumer = "drop_oldest"
    async with slow_client(hub) as (ws, _socket, session):

        async def emit(n: int) -> None:
            await hub.emit("tick", n, PAD)

        sent = await fill(hub, session, emit)
        for n in range(sent, sent + 200):
            await emit(n)
            assert session.outbox.bytes <= CAP
        last = sent + 199
        assert session.state is SessionState.OPEN
        assert dropped(hub, "drop_oldest") > 0
        ws.hold_reading(False)
        got = events(await read_until(ws, lambda ms: any(f'["tick",{last},' in m for m in ms)))
        numbers = [e[1] for e in got]
        assert numbers == sorted(numbers)  # in order, with a gap where the oldest went
        assert numbers[-1] == last
        assert len(numbers) + dropped(hub, "drop_oldest") == last + 1


async def test_coalesce_per_emit_keeps_the_latest_of_each_key() -> None:
    hub = Hub(max_buffered_bytes=CAP)
    async with slow_client(hub) as (ws, _, session):

        async def pad(n: int) -> None:
            await hub.coalesce("pad").emit("pad", PAD)

        await fill(hub, session, pad)
        for i in range(1000):
            symbol = ("AAPL", "MSFT")[i % 2]
            await hub.to().coalesce(symbol).emit("price", symbol, i)
        assert len(session.outbox) == 3  # pad, AAPL, MSFT
        assert hub.metrics.get("tether_outbox_coalesced_total", policy="coalesce") >= 998
        ws.hold_reading(False)
        got = events(await read_until(ws, lambda ms: sum("price" in m for m in ms) == 2))
        prices = [e for e in got if e[0] == "price"]
        assert prices == [["price", "AAPL", 998], ["price", "MSFT", 999]]


async def test_drop_is_volatile_and_queues_nothing() -> None:
    hub = Hub(max_buffered_bytes=CAP)
    async with slow_client(hub) as (_, socket, session):

        async def emit(n: int) -> None:
            await socket.emit("big", PAD)

        await fill(hub, session, emit)
        queued = len(session.outbox)
        for _ in range(100):
            await hub.policy("drop").emit("live", PAD)
            await socket.emit("live", PAD, policy="drop")
        assert len(session.outbox) == queued  # nothing more waits
        assert dropped(hub, "drop") == 200
        assert session.state is SessionState.OPEN


async def test_wait_holds_the_emitter_until_the_client_reads_and_loses_nothing() -> None:
    hub = Hub(max_buffered_bytes=CAP, slow_consumer_policy="wait")
    async with slow_client(hub) as (ws, socket, session):

        async def storm() -> int:
            for n in range(400):
                await socket.emit("n", n, PAD)
            return 400

        task = asyncio.ensure_future(storm())
        await wait_until(lambda: session.full)
        await settle()
        assert not task.done()  # the emitter waits: backpressure
        assert session.outbox.bytes <= CAP + len(PAD) + 64
        ws.hold_reading(False)
        got = events(await read_until(ws, lambda ms: any('["n",399,' in m for m in ms)))
        assert await asyncio.wait_for(task, WAIT) == 400
        assert [e[1] for e in got] == list(range(400))
        assert dropped(hub, "wait") == 0
        assert session.state is SessionState.OPEN


async def test_wait_gives_up_after_wait_timeout_and_disconnects_the_client() -> None:
    hub = Hub(max_buffered_bytes=CAP, wait_timeout=0.3)
    async with slow_client(hub) as (_, _socket, session):
        async with asyncio.timeout(WAIT):
            while session.state is SessionState.OPEN:
                await hub.policy("wait").emit("big", PAD)
        assert session.closed_reason == "transport error"
        assert hub.metrics.get("tether_slow_consumer_disconnects_total", policy="wait") == 1


async def test_a_policy_from_another_node_applies_to_its_clients() -> None:
    cluster = MemoryCluster()
    hub_a = Hub(broker=MemoryBroker(cluster=cluster))
    hub_b = Hub(broker=MemoryBroker(cluster=cluster, queue_size=16384), max_buffered_bytes=CAP)
    async with hub_a.serve("127.0.0.1", 0), slow_client(hub_b) as (_, _socket, session):
        await hub_a.start()
        await hub_b.start()
        await settle()
        for _ in range(300):
            await hub_a.coalesce("pad").emit("pad", PAD)
            await asyncio.sleep(0)
            if len(session.outbox):
                break
        for i in range(200):
            await hub_a.coalesce("k").emit("price", i)
        metrics = hub_b.metrics
        await wait_until(
            lambda: metrics.get("tether_outbox_coalesced_total", policy="coalesce") >= 150
        )
        assert len(session.outbox) <= 2
        assert session.state is SessionState.OPEN


def test_policies_are_checked_where_they_are_chosen() -> None:
    hub = Hub()
    with pytest.raises(InvalidOption, match="needs a key"):
        hub.policy("coalesce")
    with pytest.raises(InvalidOption, match="unknown"):
        hub.to("room").policy("block")  # type: ignore[arg-type]
    with pytest.raises(InvalidOption, match="needs a key"):
        hub.of("/").slow_consumer = "coalesce"
    with pytest.raises(InvalidOption):
        Hub(slow_consumer_policy="coalesce")
    with pytest.raises(InvalidOption, match="max_buffered_bytes"):
        Hub(max_buffered_bytes=0)
