"""RedisBroker against a Redis of the test's own: restarts, killed subscriptions, full buffer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from conftest import FAST, OwnRedis
from tether.broker import RedisBroker
from tether.exceptions import BufferFull, PayloadTooBig
from tether.testing.broker import WAIT, Inbox, wait_until, wait_until_async


async def make_pair(server: OwnRedis, **options: Any) -> tuple[RedisBroker, RedisBroker]:
    prefix = f"out{uuid.uuid4().hex[:8]}"
    a = RedisBroker(server.url, prefix=prefix, **{**FAST, **options})
    b = RedisBroker(server.url, prefix=prefix, **FAST)
    await a.start()
    await b.start()
    await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    await wait_until_async(b.live_nodes, sorted([a.node_id, b.node_id]))
    return a, b


def numbers(inbox: Inbox) -> list[int]:
    return [m.args[0] for m in inbox.broadcasts if m.event == "n"]


async def test_restart_during_traffic_delivers_every_accepted_publish_once_in_order(
    own_redis: OwnRedis,
) -> None:
    a, b = await make_pair(own_redis)
    try:
        inbox = Inbox(b)
        await b.add_interest("/", "r")
        accepted: list[int] = []

        async def publish(start: int, stop: int) -> None:
            for i in range(start, stop):
                try:
                    await a.broadcast("/", ["n", i], rooms=["r"])
                except BufferFull:
                    continue
                accepted.append(i)
                await asyncio.sleep(0)  # let the reader and the supervisor run

        await publish(0, 100)  # Redis up
        await asyncio.to_thread(own_redis.stop)
        await publish(100, 200)  # Redis down: buffered
        await wait_until(lambda: a.state == b.state == "reconnecting", "both reconnecting")
        restart = asyncio.ensure_future(asyncio.to_thread(own_redis.start))
        await publish(200, 300)  # while Redis comes back
        await restart
        await publish(300, 400)  # after
        await wait_until(lambda: len(numbers(inbox)) >= len(accepted), "every accepted message")
        await wait_until(lambda: a.state == b.state == "connected", "both nodes connected")
        assert numbers(inbox) == accepted  # exactly once, in order
        assert len(accepted) == 400  # the buffer (10000) never filled
        assert a.stats.buffered_total >= 100 and a.stats.buffered == 0
        assert b.stats.reconnects >= 1 and b.stats.resubscribed >= 1
        assert a.stats.reconnects >= 1
        # After the restart both nodes are registered again.
        await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    finally:
        await a.close()
        await b.close()


async def test_killed_pubsub_connection_is_restored(own_redis: OwnRedis) -> None:
    a, b = await make_pair(own_redis)
    try:
        inbox = Inbox(b)
        await b.add_interest("/", "r")
        await b.add_interest("/ns")
        await a.broadcast("/", ["before"], rooms=["r"])
        await inbox.wait_for_event("before")
        killed = await asyncio.to_thread(own_redis.cli, "CLIENT", "KILL", "TYPE", "pubsub")
        assert int(killed) == 2  # a's and b's pub/sub connections
        await wait_until(lambda: b.stats.reconnects >= 1, "b reconnected", WAIT)
        await wait_until(lambda: a.state == b.state == "connected", "both connected", WAIT)
        assert b.stats.resubscribed == 3  # the room, the namespace, its request channel
        await a.broadcast("/", ["after"], rooms=["r"])
        await inbox.wait_for_event("after")
        assert inbox.events() == ["before", "after"]
    finally:
        await a.close()
        await b.close()


async def test_wedged_pubsub_connection_is_noticed_by_ping(own_redis: OwnRedis) -> None:
    a, b = await make_pair(own_redis)
    try:
        inbox = Inbox(b)
        await b.add_interest("/", "r")
        # Redis stops answering every client (the sockets stay open): only the PING notices.
        await asyncio.to_thread(own_redis.cli, "CLIENT", "PAUSE", "1500", "ALL")
        await wait_until(lambda: b.stats.reconnects >= 1, "b reconnected", WAIT)
        await wait_until(lambda: b.state == "connected", "b connected", WAIT)
        await a.broadcast("/", ["after"], rooms=["r"])
        await inbox.wait_for_event("after")
    finally:
        await a.close()
        await b.close()


async def test_full_outage_buffer_raises_and_keeps_what_it_accepted(
    own_redis: OwnRedis,
) -> None:
    a, b = await make_pair(own_redis, buffer_max_messages=5)
    try:
        inbox = Inbox(b)
        await b.add_interest("/", "r")
        await asyncio.to_thread(own_redis.stop)
        for i in range(5):
            await a.broadcast("/", ["n", i], rooms=["r"])
        with pytest.raises(BufferFull):
            await a.broadcast("/", ["n", 5], rooms=["r"])
        assert a.stats.buffer_rejected == 1 and a.stats.buffered == 5
        await wait_until(lambda: a.state == "reconnecting", "a reconnecting")
        await asyncio.to_thread(own_redis.start)
        await wait_until(lambda: len(numbers(inbox)) == 5, "the 5 buffered messages")
        assert numbers(inbox) == [0, 1, 2, 3, 4]
        await wait_until(lambda: a.state == "connected", "a connected")
        assert a.stats.buffered == a.stats.buffered_bytes == 0
    finally:
        await a.close()
        await b.close()


async def test_request_during_outage_reports_the_others_missing(own_redis: OwnRedis) -> None:
    a, b = await make_pair(own_redis)
    try:
        a.set_handlers(on_request=lambda request: "a")
        await asyncio.to_thread(own_redis.stop)
        result = await a.request("/", "x", timeout=WAIT)
        assert result.replies == {a.node_id: "a"} and result.missing == {b.node_id}
        assert a.pending_requests == 0
    finally:
        await asyncio.to_thread(own_redis.start)
        await a.close()
        await b.close()


async def test_degraded_until_peers_resubscribe_and_nothing_is_lost(
    own_redis: OwnRedis,
) -> None:
    prefix = f"deg{uuid.uuid4().hex[:8]}"
    a = RedisBroker(own_redis.url, prefix=prefix, **{**FAST, "heartbeat_interval": 1.0})
    b = RedisBroker(own_redis.url, prefix=prefix, **FAST)
    c = RedisBroker(own_redis.url, prefix=prefix, **FAST)
    try:
        for node in (a, b, c):
            await node.start()
        ids = sorted(n.node_id for n in (a, b, c))
        await wait_until_async(a.live_nodes, ids)
        inbox = Inbox(c)
        await c.add_interest("/", "r")
        await b.abort()  # b crashes: a still counts it alive until its heartbeat expires
        await asyncio.to_thread(own_redis.cli, "CLIENT", "KILL", "TYPE", "pubsub")
        # a is back on Redis but waits for the peers it knew (b never comes back).
        await wait_until(lambda: a.state == "degraded", "a degraded")
        await a.broadcast("/", ["n", 1], rooms=["r"])
        assert a.stats.buffered == 1
        await inbox.wait_for_event("n")
        await wait_until(lambda: a.state == "connected", "a connected")
        await a.broadcast("/", ["n", 2], rooms=["r"])
        await wait_until(lambda: numbers(inbox) == [1, 2], "both messages")
        assert c.stats.duplicates == 0
    finally:
        for node in (a, b, c):
            await node.close()


async def test_oversized_publish_is_refused(own_redis: OwnRedis) -> None:
    a, b = await make_pair(own_redis, max_message_size=1000)
    try:
        with pytest.raises(PayloadTooBig):
            await a.broadcast("/", ["big", b"x" * 1000], rooms=["r"])
        await a.broadcast("/", ["small", b"x" * 100], rooms=["r"])
    finally:
        await a.close()
        await b.close()


async def test_start_while_redis_is_down(own_redis: OwnRedis) -> None:
    await asyncio.to_thread(own_redis.stop)
    a = RedisBroker(own_redis.url, prefix="down", subscribe_timeout=0.2, **FAST)
    try:
        await a.start()  # returns after subscribe_timeout; retries in the background
        assert a.state == "reconnecting"
        assert not await a.add_interest("/", "r")  # kept, subscribed once Redis is up
        await asyncio.to_thread(own_redis.start)
        await wait_until(lambda: a.state == "connected", "a connected")
        assert a.stats.reconnects == 0  # the first connection is not a reconnect
        assert own_redis.cli("PUBSUB", "NUMSUB", "down#/#r#").split() == ["down#/#r#", "1"]
    finally:
        await a.close()
