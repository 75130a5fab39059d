"""The Redis Cluster broker: sharded pub/sub (SSUBSCRIBE/SPUBLISH), one connection per
primary, resubscribing when slots move or a primary fails over.

The channels and keys are those of :class:`~tether.broker.redis.RedisBroker` (its
module docstring): a room channel hashes to a slot of its own, so the rooms of a cluster
spread over the shards, and a message published on a room's channel goes only to the
shard that owns it (sharded pub/sub does not cross the cluster bus). The keys of one
namespace's recovery log (``{P#NS#}:log``) share the slot of the namespace channel
``P#NS#``: a durable broadcast (connection-state recovery on) is appended and published
on the namespace channel by one script on that shard, so the log and every node see the
broadcasts of a namespace in one order; nodes without a member of its rooms drop it.

Connections: a client of commands (redis-py's ``RedisCluster``, which follows MOVED and
ASK redirections) and one pub/sub connection per primary, all owned by one supervisor.
A channel is subscribed on the primary that owns its slot, the node channel last, once
every other channel is confirmed. When a primary goes away, or tells this node its shard
channels were unsubscribed (a failover or a slot migration sends ``sunsubscribe``), the
supervisor reads the slot map again and subscribes everything again, as the single-Redis
broker does after a reconnect: publishes wait in the outage buffer meanwhile, and durable
broadcasts published while this node was not listening are read back from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from .channels import namespace_channel
from .redis import _SUBSCRIBE_CHUNK, RedisBroker
from .tasks import cancel_and_wait

__all__ = ["RedisClusterBroker"]

logger = logging.getLogger("tether.broker")


class _SlotsMoved(ConnectionResetError):
    """A primary unsubscribed shard channels this node still wants (failover, resharding)."""


def _check_primary(name: str, role: Any) -> None:
    """Raise unless ``role``, a ``ROLE`` reply, is a primary's."""
    if not role or role[0] not in (b"master", "master"):
        raise _SlotsMoved(f"{name} is not a primary (any more)")


class RedisClusterBroker(RedisBroker):
    """A :class:`~tether.broker.redis.RedisBroker` on a Redis Cluster (Redis 7+).

    Args:
        url: the URL of any node of the cluster (``redis://host:port``); the others are
            found from it.
        **options: the options of :class:`~tether.broker.redis.RedisBroker` (``prefix``,
            ``heartbeat_interval``, ``ping_interval``, buffer limits...).

    Raises:
        ImportError: ``redis`` or ``msgpack`` is not installed.
        ValueError: an option is out of range.
    """

    _PUBLISH = "SPUBLISH"
    _SHARDED = True

    def __init__(self, url: str = "redis://127.0.0.1:7000/0", **options: Any) -> None:
        super().__init__(url, **options)
        self._conns: dict[str, Any] = {}  # primary name -> pub/sub connection
        self._last_reads: dict[str, float] = {}
        self._owners: dict[str, str] = {}  # channel -> primary name it is subscribed on
        self._unconfirmed: set[str] = set()
        self._dropping: set[str] = set()  # channels this node unsubscribes itself

    async def _make_client(self) -> Any:
        from redis.asyncio.cluster import RedisCluster

        # Redirections (MOVED, ASK) are followed; failures surface at once so the
        # outage buffer takes the publish (as on a single Redis).
        client = RedisCluster.from_url(
            self.url,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._socket_timeout,
            max_connections=self._max_connections,
        )
        await client.initialize()
        return client

    # ------------------------------------------------------------------ routing

    def _durable_channels(self, namespace: str, channels: list[str]) -> list[str]:
        # The script runs on the shard of the namespace's log: it can only publish on a
        # channel of that slot, the namespace channel.
        return [namespace_channel(self.prefix, namespace)]

    def _primary_of(self, channel: str) -> Any:
        client = self._redis
        return client.nodes_manager.get_node_from_slot(client.keyslot(channel))

    async def _numsub(self, channels: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for channel in channels:
            found = await self._redis.execute_command(
                "PUBSUB", "SHARDNUMSUB", channel, target_nodes=self._primary_of(channel)
            )
            for name, count in zip(found[::2], found[1::2], strict=True):
                counts[name.decode() if isinstance(name, bytes) else str(name)] = int(count)
        return counts

    async def _publish_now(self, items: list[tuple[str, bytes]]) -> None:
        from .redis import _DURABLE

        # A script cannot be pipelined on a cluster: plain publishes go in pipelines,
        # each durable one on its own, all in order.
        plain: list[tuple[str, bytes]] = []
        for channel, data in [*items, ("", b"")]:
            if channel and channel != _DURABLE:
                plain.append((channel, data))
                continue
            if len(plain) == 1:
                await self._redis.execute_command(self._PUBLISH, *plain[0])
            elif plain:
                pipe = self._redis.pipeline(transaction=False)
                for name, payload in plain:
                    pipe.execute_command(self._PUBLISH, name, payload)
                await pipe.execute()
            plain = []
            if channel == _DURABLE:
                await self._durable_call(data)
        self.stats.published += len(items)

    # ------------------------------------------------------------------ pub/sub

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closed:
            tasks: list[asyncio.Future[None]] = []
            try:
                await self._redis.nodes_manager.initialize()  # the slot map, again
                for node in self._redis.get_primaries():
                    # A ClusterNode has the connection class and arguments of a pool.
                    conn = self._new_pubsub_connection(node)
                    self._conns[node.name] = conn
                    async with asyncio.timeout(self._socket_timeout):
                        await conn.connect()
                        # The slot map may be older than a failover: a former primary
                        # accepts SSUBSCRIBE and, as seen after a CLUSTER FAILOVER, may
                        # deliver nothing published on the new one.
                        await conn.send_command("ROLE")
                        role = await conn.read_response()
                    _check_primary(node.name, role)
                    self._last_reads[node.name] = time.monotonic()
                channels = sorted(self.channels)
                self._owners.clear()
                self._unconfirmed = set(channels)
                await self._subscribe(channels)
                if not channels:
                    await self._subscribe([self._node_channel])
                if self._ever_healthy:
                    self.stats.reconnects += 1
                    self.stats.resubscribed += len(channels)
                    logger.info(
                        "redis cluster pub/sub reconnected: %d channels subscribed again on"
                        " %d primaries",
                        len(channels),
                        len(self._conns),
                    )
                for name, conn in self._conns.items():
                    tasks.append(asyncio.ensure_future(self._read_shard(name, conn)))
                    tasks.append(asyncio.ensure_future(self._ping_shard(name, conn)))
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await cancel_and_wait(tasks)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                raise ConnectionResetError("no answer to PING on a pub/sub connection")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._healthy.is_set():
                    attempt = 0
                    logger.warning("redis cluster pub/sub lost: %r", exc)
                else:
                    logger.debug("redis cluster pub/sub failed: %r", exc)
            finally:
                self._on_lost()
                conns, self._conns = self._conns, {}
                for conn in conns.values():
                    with contextlib.suppress(Exception):
                        await conn.disconnect()
            delay = min(self._reconnect_max, self._reconnect_min * 2**attempt)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    def _by_slot(self, channels: list[str]) -> dict[tuple[str, int], list[str]]:
        # One SSUBSCRIBE names channels of one slot only (else CROSSSLOT).
        groups: dict[tuple[str, int], list[str]] = {}
        for channel in channels:
            slot = self._redis.keyslot(channel)
            name = self._redis.nodes_manager.get_node_from_slot(slot).name
            groups.setdefault((name, slot), []).append(channel)
        return groups

    async def _subscribe(self, channels: list[str]) -> None:
        for (name, _), group in self._by_slot(channels).items():
            conn = self._conns.get(name)
            if conn is None:
                # A primary this node has no connection to: the slot map changed.
                raise _SlotsMoved(f"no pub/sub connection to {name}")
            for channel in group:
                self._owners[channel] = name
            for start in range(0, len(group), _SUBSCRIBE_CHUNK):
                await conn.send_command("SSUBSCRIBE", *group[start : start + _SUBSCRIBE_CHUNK])
                self.stats.subscribe_commands += 1

    async def _transport_subscribe(self, subscribe: list[str], unsubscribe: list[str]) -> None:
        if not self._conns:
            return  # the supervisor subscribes every channel of interest on connect
        by_primary: dict[tuple[str, int], list[str]] = {}
        for channel in unsubscribe:
            name = self._owners.pop(channel, None)
            if name is not None:
                key = (name, self._redis.keyslot(channel))
                by_primary.setdefault(key, []).append(channel)
        for (name, _), group in by_primary.items():
            conn = self._conns.get(name)
            if conn is None:
                continue
            self._dropping.update(group)
            for start in range(0, len(group), _SUBSCRIBE_CHUNK):
                await conn.send_command("SUNSUBSCRIBE", *group[start : start + _SUBSCRIBE_CHUNK])
                self.stats.subscribe_commands += 1
        if subscribe:
            try:
                await self._subscribe(subscribe)
            except _SlotsMoved:
                for conn in self._conns.values():  # rebuild everything
                    with contextlib.suppress(Exception):
                        await conn.disconnect()

    async def _read_shard(self, name: str, conn: Any) -> None:
        while True:
            response = await conn.read_response()
            self._last_reads[name] = time.monotonic()
            if not isinstance(response, list) or not response:
                continue
            kind = response[0]
            if kind == b"smessage":
                self._on_raw(response[1].decode(), response[2])
            elif kind == b"ssubscribe":
                channel = response[1].decode()
                self._confirmed(channel)
                if channel == self._node_channel:
                    # Every channel is subscribed; were they all on primaries? One that
                    # was a primary when asked now sends ``sunsubscribe`` when it loses
                    # its slots, and one that was not is found here (a stale slot map).
                    await self._check_primaries()
                    self._on_healthy()
                elif channel in self._unconfirmed:
                    self._unconfirmed.discard(channel)
                    if not self._unconfirmed:
                        # Everything else is subscribed: now the node channel, so a peer
                        # that sees it subscribed knows every channel is.
                        await self._subscribe([self._node_channel])
            elif kind == b"sunsubscribe":
                channel = response[1].decode()
                if channel in self._dropping:
                    self._dropping.discard(channel)
                elif channel in self.channels or channel == self._node_channel:
                    raise _SlotsMoved(f"{name} unsubscribed {channel} (failover or resharding)")

    async def _check_primaries(self) -> None:
        for node in self._redis.get_primaries():
            if node.name not in self._conns:
                continue
            async with asyncio.timeout(self._socket_timeout):
                role = await self._redis.execute_command("ROLE", target_nodes=node)
            _check_primary(node.name, role)

    async def _ping_shard(self, name: str, conn: Any) -> None:
        while True:
            sent = time.monotonic()
            await conn.send_command("PING")
            await asyncio.sleep(self._ping_interval)
            if self._last_reads.get(name, 0.0) < sent:
                return  # no answer: the connection is dead or wedged
