"""tether benchmark server, browser-like callback API (``on_message`` + ``send_nowait``)."""

from __future__ import annotations

import uvloop
from common import MAX_SIZE, parse_args, parse_bcast, ready, ssl_context

import tether

CLIENTS: set[tether.WebSocket] = set()


async def handler(ws: tether.WebSocket) -> None:
    CLIENTS.add(ws)

    def on_message(message: str | bytes) -> None:
        if isinstance(message, str):
            command = parse_bcast(message)
            if command is not None:
                count, payload = command
                for _ in range(count):
                    tether.broadcast(CLIENTS, payload)
                return
        # Backpressure: the connection stops reading while its buffer is over the mark.
        ws.send_nowait(message)

    ws.on_message = on_message
    try:
        await ws.wait_closed()
    finally:
        CLIENTS.discard(ws)


async def main() -> None:
    args = parse_args("tether-callback")
    server = await tether.serve(
        handler,
        args.host,
        args.port,
        compression=None,
        max_size=MAX_SIZE,
        ping_interval=None,
        ssl=ssl_context(args),
    )
    ready("tether-callback", args.port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
