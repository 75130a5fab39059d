"""websockets (asyncio implementation) benchmark server."""

from __future__ import annotations

import uvloop
import websockets
from common import MAX_SIZE, parse_args, parse_bcast, ready, ssl_context
from websockets.asyncio.server import ServerConnection, serve

CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str):
                command = parse_bcast(message)
                if command is not None:
                    count, payload = command
                    for _ in range(count):
                        websockets.broadcast(CLIENTS, payload)
                    continue
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        CLIENTS.discard(ws)


async def main() -> None:
    args = parse_args("websockets")
    async with serve(
        handler,
        args.host,
        args.port,
        compression=None,
        max_size=MAX_SIZE,
        ping_interval=None,
        ssl=ssl_context(args),
    ) as server:
        ready("websockets", args.port)
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
