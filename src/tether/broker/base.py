"""The broker interface: fan-out of envelopes between server processes.

Plain publish/subscribe of :class:`Envelope` values between nodes, for whoever needs a
channel of its own. The realtime hub uses the richer
:class:`~tether.broker.cluster.ClusterBroker` (interest routing, broadcasts, requests to
every live node, liveness) through :mod:`tether.realtime.cluster`; room membership stays
behind the realtime layer's adapter (:mod:`tether.realtime.adapter`). Neither knows
which broker carries the messages: the embedded in-memory one (one process) or Redis.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Broker", "Envelope", "Subscriber"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message between nodes.

    Attributes:
        kind: what to do (``"broadcast"``, ``"disconnect"``, ``"join"``, ``"leave"``...).
        namespace: the Socket.IO namespace it concerns.
        origin: the id of the node that published it (nodes skip their own).
        payload: kind-specific, JSON-serializable data (binary as bytes is allowed).
    """

    kind: str
    namespace: str
    origin: str
    payload: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Envelope], Awaitable[None] | None]


class Broker(abc.ABC):
    """Publishes envelopes to every node subscribed to a channel."""

    @abc.abstractmethod
    async def publish(self, channel: str, envelope: Envelope) -> None:
        """Deliver ``envelope`` to every subscriber of ``channel`` (on every node)."""

    @abc.abstractmethod
    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Call ``subscriber`` for every envelope published on ``channel``."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber`` for ``channel``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections held by the broker."""
