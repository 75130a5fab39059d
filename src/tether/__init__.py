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

from . import exceptions as _exceptions
from .asyncio import Backoff, Server, WebSocket, broadcast, connect, serve
from .exceptions import *  # noqa: F403  (the whole exception tree is public API)
from .protocol import CloseCode, DeflateOptions, Headers, Request, Response, State

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "CloseCode",
    "DeflateOptions",
    "Headers",
    "Request",
    "Response",
    "Server",
    "State",
    "WebSocket",
    "__version__",
    "broadcast",
    "connect",
    "run",
    "serve",
]
__all__ += _exceptions.__all__

T = TypeVar("T")

# The optional layers, imported on first attribute access (``tether.realtime.Hub``), so
# that a plain WebSocket user never pays for them.
_LAZY_SUBMODULES = frozenset({"asgi", "broker", "engine", "realtime"})


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBMODULES)


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
