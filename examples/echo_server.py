"""Echo every WebSocket message back to its sender, text as text, binary as binary.

permessage-deflate is on and messages up to 16 MiB are accepted. This is the
server that compliance/run.sh hands to the Autobahn|Testsuite fuzzing client.

Usage::

    python examples/echo_server.py --host 127.0.0.1 --port 9001

``--port 0`` picks a free port; the URL printed on start-up says which.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import tether

MAX_SIZE = 16 * 2**20


async def echo(ws: tether.WebSocket) -> None:
    """Send each message back unchanged until the peer closes."""
    try:
        async for message in ws:
            await ws.send(message)
    except tether.ConnectionClosed:
        # The peer broke the protocol or went away; the close code is already sent
        # and kept on the exception, and there is nobody left to echo to.
        pass


async def main(host: str, port: int) -> None:
    server = await tether.serve(echo, host, port, compression="deflate", max_size=MAX_SIZE)
    async with server:
        print(f"echo server listening on ws://{host}:{server.port}", flush=True)
        await server.serve_forever()


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="tether echo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run(main(args.host, args.port))
