"""The embedded in-memory broker (the default): fan-out inside one process."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection

from .base import Envelope, Subscriber
from .cluster import BrokerState, ClusterBroker
from .messages import Broadcast, NodeRequest, Reply

__all__ = ["MemoryBroker", "MemoryCluster"]

logger = logging.getLogger("tether.broker")


class MemoryCluster:
    """The nodes of an in-process cluster: :class:`MemoryBroker` instances sharing it.

    Each :class:`MemoryBroker` has a cluster of its own unless one is passed, so a lone
    broker is the only node. Sharing one lets tests run several nodes in one process.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, MemoryBroker] = {}
        self.channels: dict[str, set[str]] = {}

    def subscribers(self, channel: str) -> list[MemoryBroker]:
        """The live nodes subscribed to ``channel``."""
        ids = self.channels.get(channel, ())
        return [self.nodes[node] for node in sorted(ids) if node in self.nodes]


class MemoryBroker(ClusterBroker):
    """Delivers envelopes to the subscribers of this process, synchronously, in order.

    It implements the whole :class:`~tether.broker.cluster.ClusterBroker` interface for
    one process: interest is counted, broadcasts reach the other nodes of the same
    :class:`MemoryCluster` that have interest (none, for a lone broker), requests are
    answered by this node (and the cluster's other nodes), and ``live_nodes()`` is this
    node (and the cluster's other nodes). The plain ``publish``/``subscribe`` API stays
    synchronous: ``publish`` returns after every subscriber ran.

    Args:
        cluster: the in-process cluster to join (a new one when omitted).
        **options: the options of :class:`~tether.broker.cluster.ClusterBroker`.

    Raises:
        ValueError: an option is out of range.
    """

    def __init__(self, *, cluster: MemoryCluster | None = None, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.cluster = cluster if cluster is not None else MemoryCluster()
        self._plain: dict[str, list[Subscriber]] = {}
        self.cluster.nodes[self.node_id] = self

    @property
    def state(self) -> BrokerState:
        """``"connected"`` until closed, then ``"closed"``."""
        return "closed" if self._closed else "connected"

    @property
    def subscriber_count(self) -> int:
        """How many plain ``subscribe()`` subscriptions this node holds (all channels)."""
        return sum(len(subscribers) for subscribers in self._plain.values())

    # The plain API keeps its synchronous behaviour (the hub relies on it) and needs no
    # worker task: it neither starts the broker nor goes through the queue.

    async def publish(self, channel: str, envelope: Envelope) -> None:
        """Run every subscriber of ``channel`` in this cluster, in order, before returning.

        A subscriber that raises is logged and the others still run.
        """
        await self._transport_envelope(channel, envelope)

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Call ``subscriber`` for every envelope published on ``channel``."""
        self._plain.setdefault(channel, []).append(subscriber)

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber`` for ``channel``."""
        subscribers = self._plain.get(channel, [])
        if subscriber in subscribers:
            subscribers.remove(subscriber)

    # ------------------------------------------------------------------ transport

    def _liveness_check_interval(self) -> float:
        return 0.05

    async def _transport_start(self) -> None:
        self.cluster.nodes[self.node_id] = self

    async def _transport_stop(self, *, graceful: bool) -> None:
        # In one process a crash and a clean stop look the same: the node is gone at once.
        self.cluster.nodes.pop(self.node_id, None)
        for ids in self.cluster.channels.values():
            ids.discard(self.node_id)

    async def _transport_subscribe(self, subscribe: list[str], unsubscribe: list[str]) -> None:
        self.stats.subscribe_commands += bool(subscribe) + bool(unsubscribe)
        for channel in unsubscribe:
            ids = self.cluster.channels.get(channel)
            if ids is not None:
                ids.discard(self.node_id)
                if not ids:
                    del self.cluster.channels[channel]
        for channel in subscribe:
            self.cluster.channels.setdefault(channel, set()).add(self.node_id)
            self._confirmed(channel)

    async def _transport_broadcast(self, channels: list[str], message: Broadcast) -> None:
        self._check_open()
        for channel in channels:
            self.stats.published += 1
            for node in self.cluster.subscribers(channel):
                info = node._channel_info(channel)
                node._count(info.kind if info else "unknown")
                node._incoming(channel, message)

    async def _transport_envelope(self, channel: str, envelope: Envelope) -> None:
        self.stats.published += 1
        nodes = [self, *(n for n in self.cluster.nodes.values() if n is not self)]
        for node in nodes:
            for subscriber in list(node._plain.get(channel, ())):
                try:
                    result = subscriber(envelope)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("broker subscriber failed on %s", channel)

    async def _transport_request(self, nodes: list[str], request: NodeRequest) -> list[str]:
        unreachable = []
        for node_id in nodes:
            node = self.cluster.nodes.get(node_id)
            if node is None:
                unreachable.append(node_id)
            else:
                node._count("node")
                node._incoming_request(request)
        return unreachable

    async def _transport_reply(self, node: str, reply: Reply) -> None:
        target = self.cluster.nodes.get(node)
        if target is not None:
            target._count("node")
            target._incoming_reply(reply)

    async def _transport_live(self, nodes: Collection[str] | None = None) -> dict[str, float]:
        return {node: float("inf") for node in self.cluster.nodes if nodes is None or node in nodes}
