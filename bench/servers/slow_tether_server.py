"""tether hub for the slow-consumer benchmark (``bench/slow_consumer.py``).

On the ``/ctl`` namespace (the controlling client is not among the storm's recipients):

- ``storm`` (count, size, rate): broadcast ``count`` events ``t`` (seq, send time, a
  string of ``size`` bytes) to everyone at ``rate`` per second (a ticker's pace), under
  the hub's slow-consumer policy (``--policy``), then ``end`` to every reading client.
- ``stats``: acknowledge with the server's RSS and what its counters say.

A client that connects to ``/`` with ``?lazy=1`` (the one that never reads) joins the
room ``lazy``, which the storm's closing ``end`` event skips, and gets a 4 KiB kernel send
buffer, so that its outbox fills within a short storm (the kernel's buffers would
otherwise take several MiB first).
"""

from __future__ import annotations

import argparse
import asyncio
import socket as socket_module
import time
from typing import Any

import tether
from tether.realtime import Hub, Socket


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="tether slow-consumer benchmark server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--policy", default="disconnect")
    parser.add_argument("--cap", type=int, default=1 << 20)
    args = parser.parse_args()
    key = "tick" if args.policy == "coalesce" else None
    policy = "drop_oldest" if key else args.policy
    hub = Hub(max_buffered_bytes=args.cap, max_buffered_packets=1_000_000)
    hub.of("/").slow_consumer = policy  # type: ignore[assignment]

    @hub.on_connect()
    async def connected(socket: Socket, auth: Any) -> None:
        if "lazy" in socket.handshake.query:
            socket.join("lazy")
            sock = socket.session.ws.transport.get_extra_info("socket")  # type: ignore[union-attr]
            sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_SNDBUF, 4096)

    @hub.on("storm", namespace="/ctl")
    async def storm(socket: Socket, count: int, size: int, rate: float) -> None:
        body = "x" * size
        start = time.monotonic()
        for seq in range(count):
            ahead = start + seq / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            await hub.emit(
                "t", seq, time.monotonic(), body, key=key, policy="coalesce" if key else None
            )
        await hub.except_("lazy").policy("wait").emit("end")

    @hub.on("stats", namespace="/ctl")
    async def stats(socket: Socket) -> dict[str, Any]:
        snapshot = hub.metrics.snapshot()
        return {
            "rss": rss(),
            **{k: v for k, v in snapshot.items() if "outbox" in k or "slow_consumer" in k},
        }

    async def serve() -> None:
        server = await hub.serve("127.0.0.1", args.port, write_limit=16384)
        print(f"ready {args.port}", flush=True)
        await server.serve_forever()

    tether.run(serve())


if __name__ == "__main__":
    main()
