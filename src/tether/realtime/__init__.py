"""Socket.IO v5 semantics: namespaces, rooms, events, acks, middleware, recovery,
and a Python client with automatic reconnection."""

from __future__ import annotations

from ..exceptions import AckTimeout
from .client import BufferFull, Client, ConnectError, Disconnected, NamespaceSocket
from .hub import ConnectionRefused, Hub, HubServe, HubServer
from .namespace import Namespace
from .operator import BroadcastOperator
from .recovery import Recovery
from .remote import RemoteSocket, SocketList
from .socket import Socket

__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "BufferFull",
    "Client",
    "ConnectError",
    "ConnectionRefused",
    "Disconnected",
    "Hub",
    "HubServe",
    "HubServer",
    "Namespace",
    "NamespaceSocket",
    "Recovery",
    "RemoteSocket",
    "Socket",
    "SocketList",
]
