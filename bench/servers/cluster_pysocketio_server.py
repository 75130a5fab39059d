"""python-socketio ``AsyncServer`` with ``AsyncRedisManager``, one node of a cluster.

For ``bench/cluster.py``; same events as ``cluster_tether_server.py`` (join, pub, stats;
``stats`` acks ``{}``: the manager keeps no counters, the bytes come from Redis's
``CLIENT LIST``). aiohttp's web server on uvloop, as ``sio_pysocketio_server.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import socketio
import uvloop
from aiohttp import web


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="python-socketio cluster benchmark node")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", required=True)
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    mgr = socketio.AsyncRedisManager(args.redis, channel=args.prefix)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=mgr)

    @sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.on("pub")
    async def pub(sid: str, room: str, payload: Any) -> bool:
        await sio.emit("m", payload, to=room)
        return True

    @sio.on("stats")
    async def stats(sid: str) -> dict[str, Any]:
        return {}

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    # the manager's listener starts with the first emit; start it now so the node is
    # subscribed before the generator's warm-up
    await sio.emit("hello", None, to="nobody")
    print(f"cluster-python-socketio listening on {args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(serve(parse_args()))
