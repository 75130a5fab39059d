"""Recovery time after a node is killed: from ``kill -9`` to the recovered CONNECT.

    .venv/bin/python bench/recovery_time.py           # writes bench/RECOVERY.md
    .venv/bin/python bench/recovery_time.py --smoke   # 50 clients, prints only

Three tether nodes (``bench/servers/cluster_tether_server.py --recovery 120``, shared
connection-state recovery on the Redis at 127.0.0.1:6379) behind nginx with
``examples/nginx/nginx.conf`` (round robin, no affinity). Node A starts alone and every
client (``bench/sio/recovery_loadgen.js``: the official socket.io-client on WebSocket,
default reconnection settings) connects through nginx, so all of them are on A, and
joins a room. Then B and C start, A is killed with SIGKILL, five broadcasts go to the
room from a hub in this process while the clients are away, and the clients reconnect
through nginx to B and C. The table gives, over the clients that recovered, the time
from the kill to the CONNECT that recovered the session (p50, p99, max), how many did
not recover, and how many received every missed broadcast in order.
The reconnection delay of the client (1 s +- 50 % by default) is part of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from polling_cluster import free_port, nginx, stop, wait_port

from tether.broker import RedisBroker
from tether.realtime import Hub, Recovery

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
REDIS = "redis://127.0.0.1:6379/0"
DURATION = 120.0
MISSED = 5


async def probe(port: int, count: int) -> None:
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()


def start_node(port: int, prefix: str) -> subprocess.Popen[Any]:
    argv = [sys.executable, str(BENCH / "servers" / "cluster_tether_server.py")]
    argv += ["--port", str(port), "--prefix", prefix, "--recovery", str(DURATION)]
    log = os.environ.get("RECOVERY_LOG")
    if log:
        argv += ["--log-level", "debug"]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(f"{log}.{port}", "w"))
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


async def run(clients: int) -> dict[str, Any]:
    prefix = f"tether-bench-recover-{uuid.uuid4().hex[:8]}"
    ports = [free_port() for _ in range(3)]
    procs = [start_node(ports[0], prefix)]
    hub = Hub(broker=RedisBroker(REDIS, prefix=prefix), recovery=Recovery(DURATION))
    loadgen: asyncio.subprocess.Process | None = None
    try:
        wait_port(ports[0], procs[0])
        with nginx(ports) as listen:
            env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
            loadgen = await asyncio.create_subprocess_exec(
                "node",
                str(BENCH / "sio" / "recovery_loadgen.js"),
                f"http://127.0.0.1:{listen}",
                json.dumps({"clients": clients}),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            assert loadgen.stdout is not None and loadgen.stdin is not None
            line = json.loads(await asyncio.wait_for(loadgen.stdout.readline(), 120))
            assert line["ev"] == "ready", line
            for port in ports[1:]:
                procs.append(start_node(port, prefix))
            for port, proc in zip(ports[1:], procs[1:], strict=True):
                wait_port(port, proc)
            while len(await hub.broker.live_nodes()) < 4:
                await asyncio.sleep(0.1)
            # nginx marked B and C failed while they were down; after fail_timeout (10 s)
            # it lets one request at a time probe them, and a WebSocket probe never ends:
            # plain requests that complete make them available again first.
            await asyncio.sleep(10.5)
            await probe(listen, 30)
            os.kill(procs[0].pid, signal.SIGKILL)
            killed = time.time()
            loadgen.stdin.write(f"kill {int(killed * 1000)}\n".encode())
            for n in range(MISSED):
                await hub.to("r").emit("m", n)
            loadgen.stdin.write(f"expect {MISSED}\n".encode())
            await loadgen.stdin.drain()
            line = json.loads(await asyncio.wait_for(loadgen.stdout.readline(), 120))
            assert line["ev"] == "done", line
            await loadgen.wait()
            return dict(line)
    finally:
        if loadgen is not None and loadgen.returncode is None:
            loadgen.kill()
            await loadgen.wait()
        await hub.close()
        await hub.broker.close()
        for proc in procs:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    clients = 50 if args.smoke else 1000
    r = asyncio.run(run(clients))
    print(r, flush=True)
    table = "\n".join(
        [
            f"{clients} clients (official socket.io-client, WebSocket, default reconnection"
            f" 1 s +- 50 %) on one node killed with SIGKILL; {MISSED} broadcasts missed;"
            f" 3 nodes behind nginx round robin; Redis on 127.0.0.1; {os.cpu_count()} cores"
            " shared by everything; one run.",
            "",
            "| clients | recovered | not recovered | got every missed broadcast, in order"
            " | p50 ms | p99 ms | max ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {clients} | {r['recovered']} | {r['not_recovered']} | {r['in_order']}"
            f" | {r['p50']} | {r['p99']} | {r['max']} |",
        ]
    )
    print(table)
    if not args.smoke:
        (BENCH / "RECOVERY.md").write_text(
            "# Recovery time after a node is killed\n\n"
            "`.venv/bin/python bench/recovery_time.py` (see its docstring).\n\n" + table + "\n"
        )


if __name__ == "__main__":
    main()
