"""python-socketio benchmark server (``socketio.AsyncServer``), on uvloop.

Same behaviour as ``sio_tether_server.py`` (echo, join + ack, bcast), written the way
python-socketio's documentation shows. Deployed with aiohttp's web server by default
(``--deploy aiohttp``): both it and the ASGI app under uvicorn (``--deploy uvicorn``,
httptools + websockets-sansio) are documented deployments, and aiohttp did 10-15% more
echoes and broadcast deliveries per server CPU-second here (uvicorn's legacy
``websockets`` implementation was slower still). Default Engine.IO settings; no
compression is negotiated because the load generator offers none.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio
import uvloop

DEPLOYS = ("aiohttp", "uvicorn")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="python-socketio benchmark server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deploy", choices=DEPLOYS, default="aiohttp")
    return parser.parse_args()


def make_server(async_mode: str) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(async_mode=async_mode)

    @sio.on("echo")
    async def echo(sid: str, *args: Any) -> None:
        # several arguments travel as a tuple (python-socketio's convention)
        await sio.emit("echo", args, to=sid)

    @sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.on("bcast")
    async def bcast(sid: str, room: str, count: int, size: int) -> None:
        payload = "x" * size
        for _ in range(count):
            await sio.emit("m", payload, to=room)

    return sio


async def serve_aiohttp(host: str, port: int) -> None:
    from aiohttp import web

    sio = make_server("aiohttp")
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"python-socketio (aiohttp) listening on {port}", flush=True)
    await asyncio.Event().wait()


async def serve_uvicorn(host: str, port: int) -> None:
    import uvicorn

    sio = make_server("asgi")
    app = socketio.ASGIApp(sio)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="none",  # already running on uvloop
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=None,  # Engine.IO has its own heartbeat
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    print(f"python-socketio (uvicorn) listening on {port}", flush=True)
    await task


def main() -> None:
    args = parse_args()
    serve = serve_aiohttp if args.deploy == "aiohttp" else serve_uvicorn
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
