"""Cluster broadcast benchmark: a room broadcast through Redis, 1 node vs 3 nodes.

tether's Hub with ``RedisBroker``, python-socketio's ``AsyncServer`` with
``AsyncRedisManager`` and Node ``socket.io`` with ``@socket.io/redis-adapter``
(``servers/cluster_*``), all driven by ``sio/cluster_loadgen.js`` (read its header for the
scenario). Run through ``bash bench/run.sh --cluster`` (which prepares bench/.venv and the
Node modules), or directly: ``bench/.venv/bin/python bench/cluster.py [--servers
tether,python-socketio,socket.io] [--nodes 1,3] [--duration 3] [--members 300]``.

What a node reads from Redis is measured in the kernel, not in Redis (MONITOR would
slow Redis down, and Redis 7.0's CLIENT LIST has no per-client network counters):
``ss -tnpi`` lists every TCP connection to the Redis port with its owning PID and
``bytes_received`` (tcp_info), so the bytes a node received from Redis are the sum over
its connections, between two snapshots the generator asks for. For tether the messages
come from ``hub.broker.stats`` (``received``), asked through the ``stats`` event.

Writes bench/CLUSTER.md and bench/out/cluster.json. Uses its own Redis prefix per cell
(``tether-bench-cluster-...``) and deletes only the keys under it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
VPY = str(BENCH / ".venv" / "bin" / "python")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

SERVERS: dict[str, list[str]] = {
    "tether": [VPY, str(BENCH / "servers" / "cluster_tether_server.py")],
    "python-socketio": [VPY, str(BENCH / "servers" / "cluster_pysocketio_server.py")],
    "socket.io": ["node", str(BENCH / "servers" / "cluster_node_server.js")],
}
LABELS = {
    "tether": "tether (RedisBroker)",
    "python-socketio": "python-socketio (AsyncRedisManager)",
    "socket.io": "Node socket.io (@socket.io/redis-adapter)",
}
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_cli(*argv: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), *argv],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout


def redis_cpu() -> float:
    info = redis_cli("INFO", "cpu")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def proc_cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    parts = stat.rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK


_SS_PID = re.compile(r"pid=(\d+)")
_SS_BYTES = re.compile(r"bytes_received:(\d+)")


def redis_bytes_by_pid() -> dict[int, int]:
    """Bytes each process received so far on its established connections to Redis."""
    out = subprocess.run(
        ["ss", "-tnpiH", "state", "established", f"( dport = :{REDIS_PORT} )"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    totals: dict[int, int] = {}
    pid = None
    for line in out.splitlines():
        m = _SS_PID.search(line)
        if m:
            pid = int(m.group(1))
            continue
        m = _SS_BYTES.search(line)
        if m and pid is not None:
            totals[pid] = totals.get(pid, 0) + int(m.group(1))
            pid = None
    return totals


def snapshot(pids: list[int]) -> dict[str, Any]:
    by_pid = redis_bytes_by_pid()
    return {
        "t": time.monotonic(),
        "redis_bytes": [by_pid.get(p, 0) for p in pids],
        "cpu": [proc_cpu(p) for p in pids],
        "redis_cpu": redis_cpu(),
    }


async def start_node(impl: str, port: int, prefix: str, log: Path) -> asyncio.subprocess.Process:
    cmd = [*SERVERS[impl], "--port", str(port), "--prefix", prefix]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab"),
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
    except TimeoutError:
        line = b""
    if b"listening" not in line:
        await stop(proc)
        raise RuntimeError(f"{impl} node on {port} did not start (see {log})")
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except TimeoutError:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 5)


async def run_cell(impl: str, n: int, opts: argparse.Namespace) -> dict[str, Any]:
    prefix = f"tether-bench-cluster-{os.getpid()}-{impl}-{n}-{int(time.time())}"
    log = OUT / "logs" / f"cluster-{impl}-{n}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    nodes: list[asyncio.subprocess.Process] = []
    gen = None
    try:
        ports = [free_port() for _ in range(n)]
        for port in ports:
            nodes.append(await start_node(impl, port, prefix, log))
        await asyncio.sleep(0.3)
        pids = [p.pid for p in nodes]
        gen = await asyncio.create_subprocess_exec(
            "node",
            str(BENCH / "sio" / "cluster_loadgen.js"),
            "--ports",
            ",".join(map(str, ports)),
            "--members",
            str(opts.members),
            "--others",
            str(opts.others),
            "--size",
            str(opts.size),
            "--window",
            str(opts.window),
            "--warmup",
            str(opts.warmup),
            "--duration",
            str(opts.duration),
            "--local-count",
            str(opts.local_count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log.open("ab"),
            start_new_session=True,
        )
        assert gen.stdin is not None and gen.stdout is not None
        snaps: dict[str, Any] = {}
        result: dict[str, Any] | None = None
        deadline = time.monotonic() + opts.duration + 60
        while result is None:
            line = await asyncio.wait_for(
                gen.stdout.readline(), max(1.0, deadline - time.monotonic())
            )
            if not line:
                raise RuntimeError(f"generator exited (see {log})")
            text = line.decode().strip()
            if text.startswith("SNAP "):
                snaps[text[5:]] = snapshot(pids)
                gen.stdin.write(b"ok\n")
                await gen.stdin.drain()
            elif text.startswith("RESULT "):
                result = json.loads(text[7:])
        await asyncio.wait_for(gen.wait(), 10)
        result["snaps"] = snaps
        return summarize(impl, n, result)
    finally:
        if gen is not None and gen.returncode is None:
            gen.kill()
            await gen.wait()
        for proc in nodes:
            await stop(proc)
        redis_cli("DEL", f"{prefix}:nodes")  # tether's liveness key: the only key made


def summarize(impl: str, n: int, r: dict[str, Any]) -> dict[str, Any]:
    s = r["snaps"]
    a0, a1, b0, b1 = s["A0"], s["A1"], s["B0"], s["B1"]
    secs = a1["t"] - a0["t"]
    row: dict[str, Any] = {
        "server": impl,
        "nodes": n,
        "deliveries_per_s": r["deliveries_per_s"],
        "emits_per_s": r["emits"] / r["seconds"],
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        "server_cpu_pct": 100
        * sum(x - y for x, y in zip(a1["cpu"], a0["cpu"], strict=True))
        / secs,
        "redis_cpu_pct": 100 * (a1["redis_cpu"] - a0["redis_cpu"]) / secs,
        "gen_cpu_pct": r["gen_cpu_pct"],
        "leaked": r["leaked_A"] + r["leaked_B"],
        # phase A: bytes one node reads from Redis per room-r emit (mean over nodes)
        "redis_bytes_per_emit_A": sum(
            x - y for x, y in zip(a1["redis_bytes"], a0["redis_bytes"], strict=True)
        )
        / n
        / max(1, r["emits"]),
    }
    if n > 1:
        k = max(1, r["local_emits"])
        far = [x - y for x, y in zip(b1["redis_bytes"][1:], b0["redis_bytes"][1:], strict=True)]
        row["far_bytes_per_emit"] = sum(far) / len(far) / k
        if impl == "tether":
            rec = [
                x["received"] - y["received"]
                for x, y in zip(r["stats"]["B1"][1:], r["stats"]["B0"][1:], strict=True)
            ]
            row["far_msgs_per_emit"] = sum(rec) / len(rec) / k
    row["raw"] = r
    return row


def fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


COLUMNS = [
    "server",
    "nodes",
    "deliveries/s",
    "emits/s",
    "p50 ms",
    "p99 ms",
    "server CPU % (all nodes)",
    "deliveries per server CPU-s",
    "Redis CPU %",
    "gen CPU %",
    "bytes from Redis per emit, per node (room hosted)",
    "bytes from Redis per emit to a room the node does not host",
    "tether msgs read per such emit",
    "leaks",
]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        if "error" in r:
            cells = [LABELS[r["server"]], str(r["nodes"]), f"failed: {r['error']}"]
            cells += [""] * (len(COLUMNS) - len(cells))
        else:
            cells = [
                LABELS[r["server"]],
                str(r["nodes"]),
                fmt(r["deliveries_per_s"]),
                fmt(r["emits_per_s"]),
                fmt(r["p50_ms"], 2),
                fmt(r["p99_ms"], 2),
                fmt(r["server_cpu_pct"]),
                fmt(100 * r["deliveries_per_s"] / max(r["server_cpu_pct"], 1e-9)),
                fmt(r["redis_cpu_pct"]),
                fmt(r["gen_cpu_pct"]),
                fmt(r["redis_bytes_per_emit_A"]),
                fmt(r.get("far_bytes_per_emit")),
                fmt(r.get("far_msgs_per_emit"), 2),
                str(r["leaked"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="tether,python-socketio,socket.io")
    parser.add_argument("--nodes", default="1,3")
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--others", type=int, default=10, help="clients per node not in the room")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--local-count", type=int, default=300)
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per cell; the median run is reported"
    )
    parser.add_argument("--cluster", action="store_true", help=argparse.SUPPRESS)  # from run.sh
    opts = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    redis_cli("PING")
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    impls = []
    for impl in opts.servers.split(","):
        if (
            impl == "socket.io"
            and not (BENCH / "node" / "node_modules" / "@socket.io" / "redis-adapter").exists()
        ):
            print(
                "cluster: @socket.io/redis-adapter not installed, socket.io skipped",
                file=sys.stderr,
            )
            continue
        impls.append(impl)
    cells = [(impl, n) for impl in impls for n in map(int, opts.nodes.split(","))]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {cell: [] for cell in cells}
    for run in range(opts.runs):  # interleaved: a burst of other work hits every cell alike
        for impl, n in cells:
            print(f"cluster: run {run + 1}/{opts.runs}: {impl} x{n}", file=sys.stderr, flush=True)
            try:
                runs[impl, n].append(await run_cell(impl, n, opts))
            except Exception as exc:
                runs[impl, n].append(
                    {"server": impl, "nodes": n, "error": f"{type(exc).__name__}: {exc}"}
                )
    for cell in cells:
        ok = sorted(
            (r for r in runs[cell] if "error" not in r), key=lambda r: r["deliveries_per_s"]
        )
        # the median run by deliveries/s, reported whole (its latency, CPU and bytes together)
        rows.append(ok[(len(ok) - 1) // 2] if ok else runs[cell][0])
    load = os.getloadavg()
    intro = (
        f"Written by `bash bench/run.sh --cluster` (`bench/cluster.py`). {opts.members} clients"
        f" in room `r`, spread evenly over the nodes, plus {opts.others} clients per node not in"
        f" it; one emitter on node 0 emits {opts.size}-byte payloads (with its send time) to `r`,"
        f" at most {opts.window} messages in flight (a message leaves the window when all"
        f" {opts.members} members have it), {opts.warmup} s warm-up, {opts.duration} s measured."
        " Latency is emit -> delivery, measured in the one generator process. Then"
        f" {opts.local_count} emits to a room only node 0 hosts: what nodes 1..N-1 read from Redis"
        " for it (kernel `bytes_received` of each node's connections to Redis, from `ss -tnpi`;"
        " tether's messages from `hub.broker.stats.received`). Everything (nodes, Redis,"
        " generator) shares one 2-core machine, unpinned: 3 nodes do not get 3 cores. The one"
        " generator process decodes every delivery: when its CPU nears 100% it, not the"
        " cluster, is the limit, so compare the deliveries per server CPU-second too. Each row"
        f" is the median run (by deliveries/s) of {opts.runs}, runs interleaved; every run is in"
        " `bench/out/cluster.json`."
    )
    md = "\n".join(
        [
            "# Cluster broadcast benchmark",
            "",
            intro,
            "",
            table(rows),
            "",
            f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f};"
            f" {time.monotonic() - started:.0f} s in all.",
            "",
        ]
    )
    raw = [{"server": i, "nodes": n, "runs": runs[i, n]} for i, n in cells]
    (OUT / "cluster.json").write_text(json.dumps(raw, indent=2, default=str))
    (BENCH / "CLUSTER.md").write_text(md)
    print(md)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
