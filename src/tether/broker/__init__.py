"""Fan-out between server processes: the in-memory broker (default) and Redis.

:class:`Broker` is the plain publish/subscribe interface of envelopes;
:class:`ClusterBroker` adds interest routing, broadcasts in the socket.io wire format,
requests to every live node and liveness (see :mod:`tether.broker.cluster`): the hub
uses that (see :mod:`tether.realtime.cluster`).
:class:`MemoryBroker` implements it in one process, :class:`RedisBroker` on Redis and
:class:`RedisClusterBroker` on a Redis Cluster (the ``tether[redis]`` extra; importing
them needs nothing, constructing them needs redis-py).
"""

from __future__ import annotations

from .base import Broker, Envelope, Subscriber
from .cluster import BrokerState, ClusterBroker
from .emitter import Emitter, EmitterOperator
from .memory import MemoryBroker, MemoryCluster
from .messages import (
    Broadcast,
    MessageHandler,
    NodeRequest,
    RemoteCommand,
    RequestHandler,
    RequestResult,
    SessionRecord,
)
from .redis import RedisBroker
from .redis_cluster import RedisClusterBroker
from .stats import BrokerStats

__all__ = [
    "Broadcast",
    "Broker",
    "BrokerState",
    "BrokerStats",
    "ClusterBroker",
    "Emitter",
    "EmitterOperator",
    "Envelope",
    "MemoryBroker",
    "MemoryCluster",
    "MessageHandler",
    "NodeRequest",
    "RedisBroker",
    "RedisClusterBroker",
    "RemoteCommand",
    "RequestHandler",
    "RequestResult",
    "SessionRecord",
    "Subscriber",
]
