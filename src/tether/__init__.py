"""tether: real-time communication over WebSockets.

The plain WebSocket API needs only the protocol core and the asyncio layer::

    import tether

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with tether.serve(echo, "127.0.0.1", 8765):
            await asyncio.Future()

The real-time layers (``tether.engine``, ``tether.realtime``, ``tether.broker``) are
imported on first use.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from .asyncio import Backoff, Server, WebSocket, broadcast, connect, serve
from .exceptions import (
    AckTimeout,
    CloseTimeout,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidRequest,
    InvalidResponse,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
    OpenTimeout,
    PayloadTooBig,
    ProtocolError,
    TetherError,
    TimeoutError,
)
from .protocol import CloseCode, DeflateOptions, Headers, Request, Response, State

__version__ = "0.1.0"

__all__ = [
    "AckTimeout",
    "Backoff",
    "CloseCode",
    "CloseTimeout",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DeflateOptions",
    "Headers",
    "InvalidHandshake",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "NegotiationError",
    "OpenTimeout",
    "PayloadTooBig",
    "ProtocolError",
    "Request",
    "Response",
    "Server",
    "State",
    "TetherError",
    "TimeoutError",
    "WebSocket",
    "__version__",
    "broadcast",
    "connect",
    "run",
    "serve",
]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed, else on the default asyncio loop."""
    # The name `asyncio` in this module is the tether.asyncio subpackage: import the
    # standard library's explicitly.
    import asyncio as std_asyncio

    try:
        import uvloop
    except ImportError:
        return std_asyncio.run(main)
    return uvloop.run(main)
