"""tether benchmark server."""

from __future__ import annotations

import uvloop
from common import MAX_SIZE, parse_args, parse_bcast, ready, ssl_context

import tether

CLIENTS: set[tether.WebSocket] = set()


async def handler(ws: tether.WebSocket) -> None:
    CLIENTS.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str):
                command = parse_bcast(message)
                if command is not None:
                    count, payload = command
                    for _ in range(count):
                        tether.broadcast(CLIENTS, payload)
                    continue
            await ws.send(message)
    except tether.ConnectionClosed:
        pass
    finally:
        CLIENTS.discard(ws)


async def main() -> None:
    args = parse_args("tether")
    server = await tether.serve(
        handler,
        args.host,
        args.port,
        compression=None,
        max_size=MAX_SIZE,
        ping_interval=None,
        ssl=ssl_context(args),
    )
    ready("tether", args.port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
