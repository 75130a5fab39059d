"""asyncio I/O for tether: WebSocket server and client on ``asyncio.Protocol``."""

from __future__ import annotations

from .client import Backoff, WebSocketURI, connect, parse_uri
from .connection import Data, WebSocket, broadcast
from .options import ConnectionOptions
from .server import Server, serve

__all__ = [
    "Backoff",
    "ConnectionOptions",
    "Data",
    "Server",
    "WebSocket",
    "WebSocketURI",
    "broadcast",
    "connect",
    "parse_uri",
    "serve",
]
