"""Socket.IO v5 semantics: namespaces, rooms, events, acks, middleware, recovery,
and a Python client with automatic reconnection."""

from __future__ import annotations

from ..exceptions import AckTimeout
from .auth import (
    Authenticator,
    JWTVerifier,
    RevokeResult,
    from_auth,
    from_cookie,
    from_header,
    from_query,
)
from .client import BufferFull, Client, ConnectError, Disconnected, NamespaceSocket
from .hub import ConnectionRefused, Hub, HubServe, HubServer
from .namespace import Namespace
from .operator import BroadcastOperator
from .recovery import Recovery
from .remote import RemoteSocket, SocketList
from .socket import Socket

__all__ = [
    "AckTimeout",
    "Authenticator",
    "BroadcastOperator",
    "BufferFull",
    "Client",
    "ConnectError",
    "ConnectionRefused",
    "Disconnected",
    "Hub",
    "HubServe",
    "HubServer",
    "JWTVerifier",
    "Namespace",
    "NamespaceSocket",
    "Recovery",
    "RemoteSocket",
    "RevokeResult",
    "Socket",
    "SocketList",
    "from_auth",
    "from_cookie",
    "from_header",
    "from_query",
]
