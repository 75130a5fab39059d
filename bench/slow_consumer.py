"""Slow-consumer benchmark: a broadcast storm to 500 clients, with and without one client
that never reads, under each slow-consumer policy of the hub.

    .venv/bin/python bench/slow_consumer.py            # writes bench/SLOW_CONSUMERS.md
    .venv/bin/python bench/slow_consumer.py --smoke    # small counts, prints only

For each policy, two fresh server processes (``bench/servers/slow_tether_server.py``):
one serves 500 reading clients, the other 499 and one client that connects and then
never reads (a 4 KiB receive buffer). One client asks for the storm; every reading
client measures what it receives. The ratio columns compare the two runs of the same
policy in the same session (the machine is shared, so ratios mean more than absolutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import tether

BENCH = Path(__file__).resolve().parent
POLICIES = ("disconnect", "drop_oldest", "coalesce", "drop", "wait")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def server(policy: str, cap: int) -> AsyncIterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "servers" / "slow_tether_server.py"),
            "--port",
            str(port),
            "--policy",
            policy,
            "--cap",
            str(cap),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.startswith("ready"), line
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def sio(port: int, namespace: str = "") -> Any:
    ws = await tether.connect(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", compression=None
    )
    assert str(await ws.recv()).startswith("0")
    prefix = f"40{namespace}," if namespace else "40"
    await ws.send(prefix)
    assert str(await ws.recv()).startswith(prefix + "{" if not namespace else prefix)
    return ws


async def read(ws: Any, count: int, out: list[Any], deadline: float) -> None:
    seqs: list[int] = []
    latencies: list[float] = []
    last = 0.0
    with contextlib.suppress(TimeoutError, tether.ConnectionClosed):
        async with asyncio.timeout(deadline):
            while True:
                message = str(await ws.recv())
                if message == "2":
                    await ws.send("3")
                elif message.startswith('42["end"'):
                    break
                elif message.startswith("42"):
                    _, seq, sent, _ = json.loads(message[2:])
                    seqs.append(seq)
                    last = time.monotonic()
                    latencies.append(last - sent)
    out.append((seqs, latencies, last))


async def never_reader(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock,
        b"GET /socket.io/?EIO=4&transport=websocket&lazy=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        data += await loop.sock_recv(sock, 4096)
    await loop.sock_sendall(sock, b"\x81\x82\x00\x00\x00\x0040")  # CONNECT "/"
    return sock


class Control:
    """The client on ``/ctl`` that starts storms and asks for stats (answering pings)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        with contextlib.suppress(tether.ConnectionClosed):
            while True:
                message = str(await self.ws.recv())
                if message == "2":
                    await self.ws.send("3")
                elif message.startswith("43/ctl,1"):
                    self.replies.put_nowait(json.loads(message[len("43/ctl,1") :])[0])

    async def stats(self) -> dict[str, Any]:
        await self.ws.send('42/ctl,1["stats"]')
        return await asyncio.wait_for(self.replies.get(), 30)

    async def storm(self, count: int, size: int, rate: float) -> None:
        await self.ws.send("42/ctl," + json.dumps(["storm", count, size, rate]))


async def run(
    policy: str, slow: bool, clients: int, count: int, size: int, cap: int, rate: float
) -> dict[str, Any]:
    async with server(policy, cap) as port:
        readers = [await sio(port) for _ in range(clients - (1 if slow else 0))]
        lazy = await never_reader(port) if slow else None
        control = Control(await sio(port, "/ctl"))
        await asyncio.sleep(0.5)
        before = (await control.stats())["rss"]
        out: list[Any] = []
        tasks = [asyncio.ensure_future(read(ws, count, out, 60)) for ws in readers]
        start = time.monotonic()
        await control.storm(count, size, rate)
        await asyncio.gather(*tasks)
        after = await control.stats()
        if lazy is not None:
            lazy.close()
        control.pump.cancel()
        for ws in [*readers, control.ws]:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
    received = sum(len(seqs) for seqs, _, _ in out)
    complete = sum(seqs == list(range(count)) for seqs, _, _ in out)
    # The rate of the storm itself: from the request to the last event a reader got.
    end = max(last for _, _, last in out) or time.monotonic()
    latencies = sorted(x for _, lat, _ in out for x in lat)
    return {
        "rate": received / (end - start),
        "p50": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        "complete": f"{complete}/{len(out)}",
        "rss": (after["rss"] - before) / 2**20,
        "dropped": sum(v for k, v in after.items() if k.startswith("tether_outbox_dropped")),
        "coalesced": sum(v for k, v in after.items() if k.startswith("tether_outbox_coalesced")),
        "disconnects": sum(v for k, v in after.items() if "disconnects" in k),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    # The storm's pace is one the readers (all in this process) keep up with, so that
    # only the client that never reads falls behind; it falls 2 KiB further per event.
    if args.smoke:
        clients, count, size, cap, rate = 50, 100, 2048, 1 << 16, 200.0
    else:
        clients, count, size, cap, rate = 500, 600, 2048, 1 << 18, 100.0
    rows = []
    for policy in args.policies.split(","):
        base = await run(policy, False, clients, count, size, cap, rate)
        slow = await run(policy, True, clients, count, size, cap, rate)
        rows.append((policy, base, slow))
        print(policy, base, slow, flush=True)
    lines = [
        f"{clients} clients, {count} broadcasts of {size} bytes at {rate:.0f}/s; outbox cap "
        f"{cap:,} bytes; {os.cpu_count()} cores; one run.",
        "",
        "| policy | deliveries/s without / with the slow client | ratio | p50 ms without / "
        "with | p99 ms without / with | readers complete (with) | server RSS growth MiB "
        "(with) | dropped | coalesced | disconnected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for policy, base, slow in rows:
        lines.append(
            f"| {policy} | {base['rate']:,.0f} / {slow['rate']:,.0f} | "
            f"{slow['rate'] / base['rate']:.2f}x | {base['p50']:.1f} / {slow['p50']:.1f} | "
            f"{base['p99']:.1f} / {slow['p99']:.1f} | {slow['complete']} | "
            f"{slow['rss']:+.1f} | {slow['dropped']:.0f} | {slow['coalesced']:.0f} | "
            f"{slow['disconnects']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.smoke:
        (BENCH / "SLOW_CONSUMERS.md").write_text(
            "# Slow consumers: one client that never reads among 500\n\n"
            "`.venv/bin/python bench/slow_consumer.py` (see its docstring).\n\n" + table + "\n"
        )


if __name__ == "__main__":
    asyncio.run(main())
