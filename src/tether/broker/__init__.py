"""Fan-out between server processes behind one interface, :class:`Broker`.

Today the only broker is the embedded in-memory one (:class:`MemoryBroker`, one
process). A Redis broker for several processes and machines is planned, not built:
it will implement the same :class:`Broker` interface.
"""

from __future__ import annotations

from .base import Broker, Envelope, Subscriber
from .memory import MemoryBroker

__all__ = ["Broker", "Envelope", "MemoryBroker", "Subscriber"]
