"""Helpers of the cluster tests: several hubs sharing one broker cluster.

``Cluster`` starts ``n`` hubs in this process, each serving on 127.0.0.1 (port 0), on
``MemoryBroker`` nodes of one ``MemoryCluster`` or on ``RedisBroker`` nodes of the shared
Redis at 127.0.0.1:6379 with a prefix of their own. Every hub answers:

  join(room) -> await socket.join(room) (cluster-wide), ack "ok"
  leave(room) -> socket.leave(room), ack "ok"
  whoami() -> ack sid (after its sid room is subscribed)
  set-data(key, value) -> socket.data[key] = value, ack "ok"

``Inbox`` collects what a tether client receives; "did not arrive" is always checked
against a later marker on the same connection (delivery is in order).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from tether.broker import ClusterBroker, MemoryBroker, MemoryCluster, RedisBroker
from tether.broker.redis_cluster import RedisClusterBroker
from tether.realtime import Client, Hub, Socket
from tether.testing.broker import wait_until_async

REDIS = "redis://127.0.0.1:6379/0"
WAIT = 15.0
FAST = {"heartbeat_interval": 0.3, "ping_interval": 0.3}
# Room for a burst of 10,000 broadcasts (Redis) or 2,000 (memory) published without pause
# (the in-memory transport delivers inside publish; past the queue the broker drops, as
# documented).
QUEUE = {"queue_size": 16384}


def make_brokers(kind: str, n: int, cluster_url: str = "") -> list[ClusterBroker]:
    if kind == "memory":
        cluster = MemoryCluster()
        return [MemoryBroker(cluster=cluster, **QUEUE) for _ in range(n)]
    prefix = f"tether-test-{uuid.uuid4().hex[:10]}"
    if kind == "redis-cluster":
        return [
            RedisClusterBroker(cluster_url, prefix=prefix, **FAST, **QUEUE)  # type: ignore[arg-type]
            for _ in range(n)
        ]
    return [RedisBroker(REDIS, prefix=prefix, **FAST, **QUEUE) for _ in range(n)]  # type: ignore[arg-type]


def install_handlers(hub: Hub, namespaces: tuple[str, ...] = ("/", "/chat")) -> None:
    for name in namespaces:
        nsp = hub.of(name)
        handlers(nsp)
    handlers(hub.of(re.compile(r"/dyn-\w+")))


def handlers(nsp: Any) -> None:
    @nsp.on("join")
    async def join(socket: Socket, room: str) -> str:
        await socket.join(room)
        return "ok"

    @nsp.on("leave")
    async def leave(socket: Socket, room: str) -> str:
        socket.leave(room)
        return "ok"

    @nsp.on("set-data")
    async def set_data(socket: Socket, key: str, value: Any) -> str:
        socket.data[key] = value
        return "ok"

    @nsp.on("whoami")
    async def whoami(socket: Socket) -> str:
        await socket.join(socket.sid)
        return socket.sid


class Inbox:
    """The events a client received, by name, in order."""

    def __init__(self, client: Client, namespace: str = "/") -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()
        client.on("*", self._any, namespace=namespace)

    def _any(self, event: str, *args: Any) -> None:
        self.events.append((event, args))
        self._changed.set()

    def named(self, event: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.events if name == event]

    async def wait_for(self, event: str, count: int = 1, timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while len(self.named(event)) < count:
                self._changed.clear()
                await self._changed.wait()


class Cluster:
    """``n`` hubs on one broker cluster, with tether clients; close() stops everything."""

    def __init__(self, kind: str, n: int = 3, cluster_url: str = "") -> None:
        self.hubs = [Hub(broker=b) for b in make_brokers(kind, n, cluster_url)]
        for hub in self.hubs:
            install_handlers(hub)
        self.servers: list[Any] = []
        self.clients: list[Client] = []

    async def start(self) -> Cluster:
        for hub in self.hubs:
            self.servers.append(await hub.serve("127.0.0.1", 0))
        # A RedisBroker's registration reaches its peers just after start(): wait (bounded)
        # until every node sees every other, so "every live node" means all of them.
        ids = {hub.broker.node_id for hub in self.hubs}
        for hub in self.hubs:

            async def sees_all(broker: Any = hub.broker) -> bool:
                return ids <= set(await broker.live_nodes())

            await wait_until_async(sees_all, True)
        return self

    async def client(self, node: int, namespace: str = "/", **kw: Any) -> tuple[Client, Inbox]:
        client = Client(reconnection=False)
        inbox = Inbox(client, namespace)
        self.clients.append(client)
        port = self.servers[node].port
        await client.connect(f"http://127.0.0.1:{port}", namespaces=[namespace], **kw)
        return client, inbox

    async def close(self) -> None:
        for client in self.clients:
            await client.disconnect()
        for hub in self.hubs:
            await hub.close()
        for hub in self.hubs:
            await hub.broker.close()
