"""aiohttp benchmark server (aiohttp has no broadcast helper: send to each in turn)."""

from __future__ import annotations

import asyncio

import uvloop
from aiohttp import WSMsgType, web
from common import MAX_SIZE, parse_args, parse_bcast, ready, ssl_context

CLIENTS: set[web.WebSocketResponse] = set()


async def handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_SIZE, heartbeat=None)
    await ws.prepare(request)
    CLIENTS.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                command = parse_bcast(msg.data)
                if command is not None:
                    count, payload = command
                    for _ in range(count):
                        for client in list(CLIENTS):
                            if not client.closed:
                                await client.send_str(payload)
                    continue
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        CLIENTS.discard(ws)
    return ws


async def main() -> None:
    args = parse_args("aiohttp")
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, ssl_context=ssl_context(args))
    await site.start()
    ready("aiohttp", args.port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
