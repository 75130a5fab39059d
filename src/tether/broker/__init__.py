"""Fan-out between server processes: the in-memory broker (default) and Redis."""

from __future__ import annotations

from .base import Broker, Envelope, Subscriber
from .memory import MemoryBroker

__all__ = ["Broker", "Envelope", "MemoryBroker", "Subscriber"]
