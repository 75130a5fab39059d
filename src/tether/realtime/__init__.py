"""Socket.IO v5 semantics: namespaces, rooms, events, acks, middleware, recovery."""

from __future__ import annotations

from .hub import AckTimeout, BroadcastOperator, ConnectionRefused, Hub, Namespace, Recovery, Socket

__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ConnectionRefused",
    "Hub",
    "Namespace",
    "Recovery",
    "Socket",
]
