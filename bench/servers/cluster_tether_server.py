"""tether Socket.IO hub as one node of a Redis cluster, for ``bench/cluster.py``.

Events (the same in ``cluster_pysocketio_server.py`` and ``cluster_node_server.js``):

- ``join`` with a room name: join it cluster-wide (``await socket.join``), ack ``true``;
- ``pub`` with (room, payload): ``hub.to(room).emit("m", payload)`` (the payload carries
  the generator's send timestamp), ack ``true`` once the emit returned;
- ``stats``: ack ``hub.broker.stats.snapshot()`` (what this node read from Redis);
- ``echo`` with a value: ack it (``bench/polling_cluster.py``), and ``forwarded``: ack
  how many polling requests this node forwarded to the sessions' owners and served for
  other nodes.

With ``--recovery SECONDS``, connection-state recovery is on, shared by the cluster
(``bench/recovery_time.py``).

Prints "cluster-tether listening on PORT" when ready; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import tether
from tether.broker import RedisBroker
from tether.realtime import Hub, Recovery, Socket


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tether cluster benchmark node")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--recovery", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--log-level", default=None)
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    if args.log_level:
        logging.basicConfig(
            level=args.log_level.upper(), format="%(created).3f %(name)s %(message)s"
        )
    recovery = (
        Recovery(max_disconnection_duration=args.recovery) if args.recovery is not None else None
    )
    hub = Hub(broker=RedisBroker(args.redis, prefix=args.prefix), recovery=recovery)

    @hub.on("join")
    async def join(socket: Socket, room: str) -> bool:
        await socket.join(room)
        return True

    @hub.on("pub")
    async def pub(socket: Socket, room: str, payload: Any) -> bool:
        await hub.to(room).emit("m", payload)
        return True

    @hub.on("echo")
    async def echo(socket: Socket, value: Any) -> Any:
        return value

    @hub.on("forwarded")
    async def forwarded(socket: Socket) -> dict[str, float]:
        return {
            "forwarded": hub.metrics.total("tether_polling_forwarded_total"),
            "served": hub.metrics.total("tether_polling_served_for_others_total"),
        }

    @hub.on("stats")
    async def stats(socket: Socket) -> dict[str, Any]:
        return hub.broker.stats.snapshot()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with hub.serve(args.host, args.port, close_timeout=2.0):
        print(f"cluster-tether listening on {args.port}", flush=True)
        await stop.wait()
    await hub.broker.close()


if __name__ == "__main__":
    tether.run(main())
