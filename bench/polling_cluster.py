"""Long-polling clients behind a round-robin nginx (no affinity), 1 node vs 3 nodes.

    .venv/bin/python bench/polling_cluster.py           # writes bench/POLLING.md
    .venv/bin/python bench/polling_cluster.py --smoke   # small counts, prints only

Each run starts the tether nodes (``bench/servers/cluster_tether_server.py``, one
process each, on the Redis at 127.0.0.1:6379 with a prefix of their own), nginx with
``examples/nginx/nginx.conf`` pointed at them, and ``bench/sio/polling_loadgen.js``: the
official socket.io-client on ``transports: ["polling"]``, every client doing acked
echoes in a loop. With three nodes, two requests in three reach a node that does not own
the session and are forwarded to the owner through Redis; the table says how many.
Needs nginx (``make test`` installs it) and tests/node/node_modules.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tether.realtime import Client

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CONFIG = ROOT / "examples" / "nginx" / "nginx.conf"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any]) -> None:
    for _ in range(400):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def nodes(count: int) -> Iterator[list[int]]:
    prefix = f"tether-bench-poll-{uuid.uuid4().hex[:8]}"
    ports = [free_port() for _ in range(count)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "servers" / "cluster_tether_server.py"),
                "--port",
                str(port),
                "--prefix",
                prefix,
            ],
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_port(port, proc)
        time.sleep(2.5)  # one heartbeat: every node sees the others
        yield ports
    finally:
        for proc in procs:
            stop(proc)


@contextlib.contextmanager
def nginx(ports: list[int]) -> Iterator[int]:
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    listen = free_port()
    text = CONFIG.read_text()
    servers = "".join(f"        server 127.0.0.1:{port};\n" for port in ports)
    lines = [line for line in text.splitlines(True) if "server 127.0.0.1:800" not in line]
    text = "".join(lines).replace("upstream tether {\n", "upstream tether {\n" + servers)
    text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tmp").mkdir()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(text)
        proc = subprocess.Popen(
            [nginx_bin, "-p", tmp, "-c", str(conf), "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(listen, proc)
            yield listen
        finally:
            stop(proc, signal.SIGQUIT)


async def forwarded(ports: list[int]) -> tuple[float, float]:
    total = served = 0.0
    for port in ports:
        client = Client(reconnection=False)
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        counts = await client.emit_with_ack("forwarded", timeout=10)
        total += counts["forwarded"]
        served += counts["served"]
        await client.disconnect()
    return total, served


def run(count: int, clients: int, seconds: float) -> dict[str, Any]:
    with nodes(count) as ports, nginx(ports) as port:
        env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
        done = subprocess.run(
            [
                "node",
                str(BENCH / "sio" / "polling_loadgen.js"),
                f"http://127.0.0.1:{port}",
                json.dumps({"clients": clients, "seconds": seconds}),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds + 120,
        )
        result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
        result["forwarded"], result["served"] = asyncio.run(forwarded(ports))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    clients, seconds = (20, 3.0) if args.smoke else (200, 15.0)
    rows = []
    for count in (1, 3):
        result = run(count, clients, seconds)
        print(count, result, flush=True)
        rows.append((count, result))
    lines = [
        f"{clients} polling clients (official socket.io-client), one acked echo in flight "
        f"each, {seconds:.0f} s; nginx round robin, no affinity; Redis on 127.0.0.1; "
        f"{os.cpu_count()} cores shared by everything; one run.",
        "",
        "| nodes | acked echoes/s | p50 ms | p99 ms | polling requests forwarded | errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, r in rows:
        lines.append(
            f"| {count} | {r['acks'] / r['seconds']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['forwarded']:,.0f} | {r['error_count']} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.smoke:
        (BENCH / "POLLING.md").write_text(
            "# Long-polling behind a round-robin proxy, 1 node vs 3\n\n"
            "`.venv/bin/python bench/polling_cluster.py` (see its docstring).\n\n" + table + "\n"
        )


if __name__ == "__main__":
    main()
