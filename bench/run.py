"""Side-by-side benchmarks: tether against peer WebSocket servers.

Started by ``bench/run.sh`` (which installs the peers and builds the load generator);
it can also be run directly with the interpreter of ``bench/.venv``::

    bench/.venv/bin/python bench/run.py [--smoke] [--runs N] [--scenarios a,b] [--servers x,y]
    bench/.venv/bin/python bench/run.py --profile      # py-spy on the tether server under echo load

For every run, scenario and server: start the server pinned to core 0, run the load
generator pinned to core 1, stop the server. Report the median of the runs.

Two registries drive everything: SERVERS (what to start) and SCENARIOS (what to measure
and with which driver). A scenario names the protocol it speaks (``"ws"`` or
``"socketio"``) and runs only against servers that speak it. Each protocol has its own
subject (the tether server the ratios are about), its own raw results file and its own
section of the report; a run of one protocol's scenarios keeps the other's section.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
SERVERS_DIR = BENCH / "servers"
LOADGEN = OUT / "loadgen"
CERT = OUT / "cert.pem"
KEY = OUT / "key.pem"
SUBJECT = "tether"  # ratios are SUBJECT / peer
SIO_DIR = BENCH / "sio"
SIO_LOADGEN = SIO_DIR / "loadgen.js"
# per protocol: the subject of the ratios, the raw results file, the report section title
PROTOCOLS: dict[str, tuple[str, str, str]] = {
    "ws": (SUBJECT, "results", "WebSocket"),
    "socketio": ("tether-sio", "results-socketio", "Socket.IO"),
}

# ---------------------------------------------------------------------------------------
# registries


@dataclass(frozen=True)
class Context:
    """What a driver needs to know about this invocation."""

    smoke: bool
    python: str
    logs: Path
    tls_ok: bool
    fd_limit: int


@dataclass(frozen=True)
class Server:
    """A server under test: how to start it and how to tell its version."""

    name: str
    label: str
    command: Callable[[Context, int, bool], list[str]]
    protocols: frozenset[str] = frozenset({"ws"})
    python_module: str | None = None  # checked for importability, and for the version
    node_package: str | None = None

    @property
    def subject(self) -> bool:
        return any(self.name == subject for subject, _, _ in PROTOCOLS.values())


@dataclass(frozen=True)
class Metric:
    key: str  # key in the driver's JSON result
    label: str
    unit: str
    higher_is_better: bool
    digits: int = 0
    per_cpu: bool = False  # also report the rate per server CPU-second


@dataclass
class ServerHandle:
    server: Server
    proc: subprocess.Popen[bytes]
    port: int
    tls: bool

    @property
    def pid(self) -> int:
        return self.proc.pid


Driver = Callable[[Context, "Scenario", ServerHandle], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """One measurement. ``params`` / ``smoke_params`` go to the driver."""

    name: str
    title: str
    metrics: tuple[Metric, ...]
    params: dict[str, Any]
    smoke_params: dict[str, Any]
    driver: Driver
    protocol: str = "ws"
    tls: bool = False
    note: str = ""
    timeout: float = 180.0
    missing: Callable[[], str | None] | None = None  # why it cannot run here, or None

    def args(self, ctx: Context) -> dict[str, Any]:
        return self.args_for(ctx.smoke)

    def args_for(self, smoke: bool) -> dict[str, Any]:
        return self.smoke_params if smoke else self.params


SERVERS: dict[str, Server] = {}
SCENARIOS: dict[str, Scenario] = {}


def register_server(server: Server) -> Server:
    SERVERS[server.name] = server
    return server


def register_scenario(scenario: Scenario) -> Scenario:
    SCENARIOS[scenario.name] = scenario
    return scenario


# ---------------------------------------------------------------------------------------
# servers


def python_server(script: str) -> Callable[[Context, int, bool], list[str]]:
    def command(ctx: Context, port: int, tls: bool) -> list[str]:
        cmd = [ctx.python, str(SERVERS_DIR / script), "--port", str(port)]
        if tls:
            cmd += ["--tls", str(CERT), str(KEY)]
        return cmd

    return command


def node_server(ctx: Context, port: int, tls: bool) -> list[str]:
    cmd = [shutil.which("node") or "node", str(SERVERS_DIR / "ws_server.js"), "--port", str(port)]
    if tls:
        cmd += ["--tls", str(CERT), str(KEY)]
    return cmd


def node_sio_server(ctx: Context, port: int, tls: bool) -> list[str]:
    return [
        shutil.which("node") or "node",
        str(SERVERS_DIR / "sio_node_server.js"),
        "--port",
        str(port),
    ]


register_server(
    Server("tether", "tether", python_server("tether_server.py"), python_module="tether")
)
register_server(
    Server(
        "tether-callback",
        "tether (callbacks)",
        python_server("tether_callback_server.py"),
        python_module="tether",
    )
)
register_server(
    Server(
        "websockets",
        "websockets",
        python_server("websockets_server.py"),
        python_module="websockets",
    )
)
register_server(
    Server("aiohttp", "aiohttp", python_server("aiohttp_server.py"), python_module="aiohttp")
)
register_server(
    Server("picows", "picows", python_server("picows_server.py"), python_module="picows")
)
register_server(Server("ws", "ws (Node)", node_server, node_package="ws"))
SOCKETIO = frozenset({"socketio"})
register_server(
    Server(
        "tether-sio",
        "tether",
        python_server("sio_tether_server.py"),
        protocols=SOCKETIO,
        python_module="tether",
    )
)
register_server(
    Server(
        "python-socketio",
        "python-socketio",
        python_server("sio_pysocketio_server.py"),
        protocols=SOCKETIO,
        python_module="socketio",
    )
)
register_server(
    Server(
        "socketio-node",
        "socket.io (Node)",
        node_sio_server,
        protocols=SOCKETIO,
        node_package="socket.io",
    )
)

# ---------------------------------------------------------------------------------------
# drivers


def loadgen_driver(ctx: Context, scenario: Scenario, handle: ServerHandle) -> dict[str, Any]:
    """Run the C load generator on core 1 and return its JSON result."""
    params = dict(scenario.args(ctx))
    if scenario.name == "idle":
        # keep room for the server's own descriptors; run.sh raises ulimit -n
        params["conns"] = min(int(params["conns"]), max(100, ctx.fd_limit - 256))
    cmd = [
        "taskset",
        "-c",
        "1",
        str(LOADGEN),
        "--port",
        str(handle.port),
        "--server-pid",
        str(handle.pid),
    ]
    if handle.tls:
        cmd.append("--tls")
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is not False and value is not None:
            cmd += [flag, str(value)]
    limit = float(params.get("timeout", scenario.timeout)) + 30
    return run_generator(cmd, limit)


def run_generator(cmd: list[str], limit: float) -> dict[str, Any]:
    """Run a generator command and return the last JSON object it printed."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"loadgen printed no result (exit {proc.returncode}): {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    if proc.stderr.strip():
        result["stderr"] = proc.stderr.strip().splitlines()[-5:]
    return result


def sio_missing() -> str | None:
    """Why the Socket.IO generator cannot run here, or None."""
    if not shutil.which("node"):
        return "node not found"
    if not (SIO_DIR / "node_modules" / "socket.io-client" / "package.json").exists():
        return "socket.io-client not installed in bench/sio (bash bench/run.sh installs it)"
    return None


def sio_driver(ctx: Context, scenario: Scenario, handle: ServerHandle) -> dict[str, Any]:
    """Run the Node socket.io-client generator (bench/sio/loadgen.js) on core 1."""
    params = dict(scenario.args(ctx))
    if params.get("scenario") == "idle":
        params["conns"] = min(int(params["conns"]), max(100, ctx.fd_limit - 256))
    node = shutil.which("node") or "node"
    cmd = ["taskset", "-c", "1", node, str(SIO_LOADGEN)]
    cmd += ["--port", str(handle.port), "--server-pid", str(handle.pid)]
    for key, value in params.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    limit = float(params.get("timeout", scenario.timeout)) + 30
    return run_generator(cmd, limit)


# ---------------------------------------------------------------------------------------
# scenarios

RPS = Metric("rps", "round trips/s", "msg/s", True, per_cpu=True)
P50 = Metric("p50_us", "p50 latency", "µs", False)
P99 = Metric("p99_us", "p99 latency", "µs", False)
MBS = Metric("mb_s", "throughput", "MB/s", True, 1, per_cpu=True)
ECHO_FULL = {"warmup": 1, "duration": 5, "timeout": 60}
ECHO_SMOKE = {"warmup": 0.1, "duration": 0.4, "timeout": 20}

register_scenario(
    Scenario(
        "echo-1",
        "echo 16 B text, 1 connection",
        (RPS, P50, P99),
        {"scenario": "echo", "conns": 1, "size": 16, **ECHO_FULL},
        {"scenario": "echo", "conns": 1, "size": 16, **ECHO_SMOKE},
        loadgen_driver,
    )
)
register_scenario(
    Scenario(
        "echo-100",
        "echo 16 B text, 100 connections",
        (RPS, P50, P99),
        {"scenario": "echo", "conns": 100, "size": 16, **ECHO_FULL},
        {"scenario": "echo", "conns": 100, "size": 16, **ECHO_SMOKE},
        loadgen_driver,
    )
)
register_scenario(
    Scenario(
        "bin-64k",
        "echo 64 KiB binary, 1 connection",
        (MBS,),
        {"scenario": "echo", "conns": 1, "size": 65536, "binary": True, **ECHO_FULL},
        {"scenario": "echo", "conns": 1, "size": 65536, "binary": True, **ECHO_SMOKE},
        loadgen_driver,
        note="MB/s = 10^6 payload bytes echoed per second, counted one way "
        "(each message crosses loopback twice); one message in flight.",
    )
)
register_scenario(
    Scenario(
        "bin-1m",
        "echo 1 MiB binary, 1 connection",
        (MBS,),
        {"scenario": "echo", "conns": 1, "size": 1 << 20, "binary": True, **ECHO_FULL},
        {"scenario": "echo", "conns": 1, "size": 1 << 20, "binary": True, **ECHO_SMOKE},
        loadgen_driver,
        note="as above",
    )
)
register_scenario(
    Scenario(
        "broadcast",
        "broadcast: 1,000 clients, !bcast 100 64",
        (Metric("deliveries_per_s", "deliveries/s", "msg/s", True, per_cpu=True),),
        {"scenario": "bcast", "conns": 1000, "bcast_k": 100, "size": 64, "timeout": 90},
        {"scenario": "bcast", "conns": 100, "bcast_k": 10, "size": 64, "timeout": 20},
        loadgen_driver,
        note="from sending the command until all 100,000 messages (1,000 x 100) arrived.",
    )
)
register_scenario(
    Scenario(
        "idle",
        "idle memory: 5,000 connections",
        (Metric("kib_per_conn", "server RSS per connection", "KiB", False, 2),),
        {"scenario": "idle", "conns": 5000, "settle": 2, "connect_concurrency": 64, "timeout": 120},
        {"scenario": "idle", "conns": 200, "settle": 0.2, "connect_concurrency": 64, "timeout": 20},
        loadgen_driver,
        note="VmRSS after (all connected, one echo each, settled) minus before, over N.",
    )
)
register_scenario(
    Scenario(
        "handshake",
        "open + echo + close, 50 concurrent",
        (Metric("conn_per_s", "connections/s", "conn/s", True, per_cpu=True),),
        {"scenario": "handshake", "conns": 50, **ECHO_FULL},
        {"scenario": "handshake", "conns": 10, **ECHO_SMOKE},
        loadgen_driver,
        note="a session: TCP connect, upgrade, one 16 B echo, close handshake, server closes TCP.",
    )
)
register_scenario(
    Scenario(
        "wss-echo-100",
        "wss:// echo 16 B text, 100 connections",
        (RPS, P50, P99),
        {"scenario": "echo", "conns": 100, "size": 16, **ECHO_FULL},
        {"scenario": "echo", "conns": 10, "size": 16, **ECHO_SMOKE},
        loadgen_driver,
        tls=True,
        note="TLS in the C generator (OpenSSL), self-signed certificate.",
    )
)

# Socket.IO: the servers in servers/sio_*, driven by bench/sio/loadgen.js (socket.io-client,
# WebSocket transport only, one Node process on core 1).
SIO_ECHO_FULL = {"warmup": 1, "duration": 5, "timeout": 90}
SIO_ECHO_SMOKE = {"warmup": 0.2, "duration": 0.5, "timeout": 30}
SIO_NOTE = "emit('echo', 16 B string), the server emits 'echo' back with the same argument; "

register_scenario(
    Scenario(
        "sio-echo-1",
        "Socket.IO event echo, 1 client",
        (RPS, P50, P99),
        {"scenario": "echo", "conns": 1, "size": 16, **SIO_ECHO_FULL},
        {"scenario": "echo", "conns": 1, "size": 16, **SIO_ECHO_SMOKE},
        sio_driver,
        protocol="socketio",
        note=SIO_NOTE + "one event in flight per client.",
        missing=sio_missing,
    )
)
register_scenario(
    Scenario(
        "sio-echo-100",
        "Socket.IO event echo, 100 clients",
        (RPS, P50, P99),
        {"scenario": "echo", "conns": 100, "size": 16, **SIO_ECHO_FULL},
        {"scenario": "echo", "conns": 100, "size": 16, **SIO_ECHO_SMOKE},
        sio_driver,
        protocol="socketio",
        note=SIO_NOTE + "one event in flight per client.",
        missing=sio_missing,
    )
)
register_scenario(
    Scenario(
        "sio-broadcast",
        "Socket.IO room broadcast: 1,000 clients, bcast('r', 100, 64)",
        (Metric("deliveries_per_s", "deliveries/s", "msg/s", True, per_cpu=True),),
        {"scenario": "bcast", "conns": 1000, "bcast_count": 100, "size": 64, "timeout": 120},
        {"scenario": "bcast", "conns": 100, "bcast_count": 10, "size": 64, "timeout": 30},
        sio_driver,
        protocol="socketio",
        note="every client joins room 'r' (acknowledged); one emits bcast('r', 100, 64) and the "
        "server emits 100 events 'm' with a 64 B string to the room: deliveries/s from that "
        "emit until all 100,000 arrived.",
        missing=sio_missing,
    )
)
register_scenario(
    Scenario(
        "sio-idle",
        "Socket.IO idle memory: 2,000 clients",
        (Metric("kib_per_conn", "server RSS per client", "KiB", False, 2),),
        {"scenario": "idle", "conns": 2000, "settle": 2, "timeout": 120},
        {"scenario": "idle", "conns": 200, "settle": 0.2, "timeout": 30},
        sio_driver,
        protocol="socketio",
        note="VmRSS after (all connected to the main namespace, one echo each, settled) "
        "minus before, over N.",
        missing=sio_missing,
    )
)

# ---------------------------------------------------------------------------------------
# running servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(ctx: Context, server: Server, tls: bool, log: Path) -> ServerHandle:
    port = free_port()
    cmd = ["taskset", "-c", "0", *server.command(ctx, port, tls)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=BENCH
        )
    handle = ServerHandle(server, proc, port, tls)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if b"listening on" in log.read_bytes():
            return handle
        time.sleep(0.02)
    stop_server(handle)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    raise RuntimeError(f"{server.name} did not start: {' | '.join(tail) or 'no output'}")


def stop_server(handle: ServerHandle) -> None:
    proc = handle.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------
# environment facts


def fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def python_versions(python: str, modules: Iterable[str]) -> dict[str, str | None]:
    code = (
        "import importlib, importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "dists = m.packages_distributions()\n"  # socketio -> python-socketio
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        out[name] = m.version(dists.get(name, [name])[0])\n"
        "    except Exception as exc:\n"
        "        out[name] = None\n"
        "        out[name + ':error'] = f'{type(exc).__name__}: {exc}'\n"
        "import uvloop; out['uvloop'] = m.version('uvloop')\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [python, "-c", code, *modules], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cannot inspect {python}: {proc.stderr.strip()[-300:]}")
    result: dict[str, str | None] = json.loads(proc.stdout)
    return result


def node_version(package: str, where: Path = BENCH / "node") -> tuple[str | None, str]:
    node = shutil.which("node")
    if not node:
        return None, "node not found"
    pkg = where / "node_modules" / package / "package.json"
    if not pkg.exists():
        return None, f"{package} not installed in bench/{where.name}"
    return str(json.loads(pkg.read_text())["version"]), ""


def machine_facts(python: str) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node = shutil.which("node")
    node_v = (
        subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
        if node
        else ""
    )
    py_v = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    mem = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "commit": tether_commit(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "memory": mem,
        "python": py_v.strip(),
        "node": node_v.strip() or "not found",
    }


def tether_commit() -> str:
    """The commit measured, and whether src/ had uncommitted changes."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not head:
        return "unknown"
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return head + (" + uncommitted changes in src/" if dirty else "")


# ---------------------------------------------------------------------------------------
# formatting


def fmt_value(metric: Metric, value: float | None) -> str:
    if value is None:
        return "—"
    if metric.digits:
        return f"{value:,.{metric.digits}f}"
    return f"{value:,.0f}"


def fmt_ratio(metric: Metric, ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}x"


@dataclass
class Outcome:
    """All runs of one scenario on one server."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None

    def values(self, key: str) -> list[float]:
        """Per-run values of ``key`` from the good runs; ``KEY/cpu`` divides by server CPU."""
        base, _, per = key.partition("/")
        out = []
        for r in self.runs:
            if not r.get("ok") or r.get(base, -1) < 0:
                continue
            if per == "cpu":
                cpu = float(r.get("server_cpu_pct", -1))
                if cpu > 0:
                    out.append(float(r[base]) / (cpu / 100))
            else:
                out.append(float(r[base]))
        return out

    def median(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.median(values) if values else None

    def max_of(self, key: str) -> float | None:
        values = self.values(key)
        return max(values) if values else None


def render_table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |"]
        lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(rows[0]))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def results_rows(
    scenarios: list[Scenario],
    servers: list[Server],
    outcomes: dict[tuple[str, str], Outcome],
    per_cpu: bool = False,
    subject: str = SUBJECT,
) -> list[list[str]]:
    """The main table, or with ``per_cpu`` the rates divided by the server's CPU use."""
    peers = [s for s in servers if s.name != subject]
    has_subject = any(s.name == subject for s in servers)
    header = ["scenario", "metric", *[s.label for s in servers]]
    if has_subject:
        label = SERVERS[subject].label
        header += [f"{label}/{p.label}" for p in peers]
    rows = [header]
    for sc in scenarios:
        for metric in sc.metrics:
            if per_cpu and not metric.per_cpu:
                continue
            key = f"{metric.key}/cpu" if per_cpu else metric.key
            arrow = "higher is better" if metric.higher_is_better else "lower is better"
            unit = metric.unit.replace("/s", "") + " per server CPU-s" if per_cpu else metric.unit
            row = [sc.name, f"{metric.label} ({unit}, {arrow})"]
            values = {}
            for srv in servers:
                oc = outcomes.get((sc.name, srv.name))
                value = oc.median(key) if oc else None
                values[srv.name] = value
                if oc and oc.skipped:
                    row.append("skipped")
                elif oc and value is None and oc.failures:
                    row.append("failed")
                else:
                    row.append(fmt_value(metric, value))
            if has_subject:
                row += [fmt_ratio(metric, values.get(subject), values[p.name]) for p in peers]
            rows.append(row)
    return rows


def cpu_rows(
    scenarios: list[Scenario], servers: list[Server], outcomes: dict[tuple[str, str], Outcome]
) -> tuple[list[list[str]], list[str]]:
    rows = [["scenario", "", *[s.label for s in servers]]]
    hot: list[str] = []
    for sc in scenarios:
        row = [sc.name, "gen% / server%"]
        for srv in servers:
            oc = outcomes.get((sc.name, srv.name))
            gen = oc.max_of("gen_cpu_pct") if oc else None
            sv = oc.median("server_cpu_pct") if oc else None
            if gen is None:
                row.append("—")
                continue
            mark = "!" if gen >= 90 else ""
            row.append(f"{gen:.0f}{mark} / {sv:.0f}" if sv is not None else f"{gen:.0f}{mark} / ?")
            if gen >= 90:
                hot.append(f"{sc.name} on {srv.label} (generator {gen:.0f}%)")
        rows.append(row)
    return rows, hot


# ---------------------------------------------------------------------------------------
# main


def run_all(args: argparse.Namespace) -> int:
    python = sys.executable
    tls_ok = LOADGEN.exists() and CERT.exists() and KEY.exists() and tls_built()
    ctx = Context(
        smoke=args.smoke, python=python, logs=OUT / "logs", tls_ok=tls_ok, fd_limit=fd_limit()
    )
    ctx.logs.mkdir(parents=True, exist_ok=True)
    if not LOADGEN.exists():
        print("bench: bench/out/loadgen is missing; run bench/run.sh", file=sys.stderr)
        return 2

    scenarios = (
        [SCENARIOS[n] for n in args.scenarios] if args.scenarios else list(SCENARIOS.values())
    )
    servers = [SERVERS[n] for n in args.servers] if args.servers else list(SERVERS.values())

    # which servers can run at all
    modules = [s.python_module for s in servers if s.python_module]
    if "python-socketio" in [s.name for s in servers]:
        modules += ["engineio", "aiohttp"]  # python-socketio's engine and its web server
    versions = python_versions(python, modules)
    unavailable: dict[str, str] = {}
    lib_versions: dict[str, str] = {"uvloop": versions.get("uvloop") or "?"}
    server_versions: dict[str, str] = {}
    for srv in servers:
        if srv.python_module:
            version = versions.get(srv.python_module)
            if version is None:
                unavailable[srv.name] = str(versions.get(srv.python_module + ":error"))
            else:
                server_versions[srv.name] = version
        elif srv.node_package:
            version, why = node_version(srv.node_package)
            if version is None:
                unavailable[srv.name] = why
            else:
                server_versions[srv.name] = version
    extra_versions: dict[str, dict[str, str]] = {"socketio": {}}
    if versions.get("engineio"):
        extra_versions["socketio"]["python-engineio"] = str(versions["engineio"])
        extra_versions["socketio"]["aiohttp"] = str(versions.get("aiohttp"))
    sio_client, _ = node_version("socket.io-client", SIO_DIR)
    if sio_client:
        extra_versions["socketio"]["socket.io-client (generator)"] = sio_client
    versions_by_protocol = {
        proto: {
            **lib_versions,
            **{
                s.label: server_versions[s.name]
                for s in servers
                if proto in s.protocols and s.name in server_versions
            },
            **extra_versions.get(proto, {}),
        }
        for proto in PROTOCOLS
    }
    for name, why in unavailable.items():
        if SERVERS[name].subject:
            print(f"bench: {name} is not importable: {why}", file=sys.stderr)
            return 1
    for name, why in unavailable.items():
        print(f"bench: {name}: skipped ({why})")
    missing = {sc.name: sc.missing() for sc in scenarios if sc.missing is not None}

    runs = 1 if args.smoke else args.runs
    load_start = os.getloadavg()[0]
    outcomes: dict[tuple[str, str], Outcome] = {}
    started = time.monotonic()
    for run in range(runs):
        for sc in scenarios:
            for srv in servers:
                oc = outcomes.setdefault((sc.name, srv.name), Outcome())
                if sc.protocol not in srv.protocols:
                    oc.skipped = f"does not speak {sc.protocol}"
                    continue
                if srv.name in unavailable:
                    oc.skipped = unavailable[srv.name]
                    continue
                if missing.get(sc.name):
                    oc.skipped = missing[sc.name]
                    print(
                        f"  [{run + 1}/{runs}] {sc.name:<13} {srv.label:<11} skipped ({oc.skipped})"
                    )
                    continue
                if sc.tls and not ctx.tls_ok:
                    oc.skipped = "generator built without TLS or no certificate"
                    print(f"  [{run + 1}/{runs}] {sc.name:<13} {srv.label:<11} skipped (no TLS)")
                    continue
                log = ctx.logs / f"{srv.name}-{sc.name}-{run + 1}.log"
                line = f"  [{run + 1}/{runs}] {sc.name:<13} {srv.label:<11}"
                try:
                    handle = start_server(ctx, srv, sc.tls, log)
                except Exception as exc:
                    oc.failures.append(str(exc))
                    print(f"{line} skipped ({exc})", flush=True)
                    continue
                try:
                    result = sc.driver(ctx, sc, handle)
                except Exception as exc:
                    result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                finally:
                    stop_server(handle)
                result["run"] = run + 1
                oc.runs.append(result)
                if result.get("ok"):
                    shown = ", ".join(
                        f"{m.key}={fmt_value(m, result.get(m.key))}" for m in sc.metrics
                    )
                    print(
                        f"{line} {shown}  (gen {result.get('gen_cpu_pct', -1):.0f}%, "
                        f"server {result.get('server_cpu_pct', -1):.0f}%)",
                        flush=True,
                    )
                else:
                    why = result.get("error")
                    errs = {k: v for k, v in result.get("errors", {}).items() if v}
                    oc.failures.append(f"run {run + 1}: {why} {errs or ''}".strip())
                    print(f"{line} FAILED: {why} {errs or ''} (log: {log})", flush=True)
    elapsed = time.monotonic() - started

    facts = machine_facts(python)
    facts["load"] = f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    raw = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "runs": runs,
        "elapsed_s": round(elapsed, 1),
        "machine": facts,
        "versions": lib_versions,
        "versions_by_protocol": versions_by_protocol,
        "scenarios": [sc.name for sc in scenarios],
        "servers": [srv.name for srv in servers],
        "results": {f"{k[0]}/{k[1]}": v.__dict__ for k, v in outcomes.items()},
    }
    # one raw file per protocol, so a run of one protocol keeps the other's results
    for proto, part in split_by_protocol(raw).items():
        out_json = results_path(proto, args.smoke)
        out_json.write_text(json.dumps(part, indent=1))
        print(f"wrote {out_json.relative_to(ROOT)}")
    return report(raw, args.output)


def results_path(protocol: str, smoke: bool) -> Path:
    """``results.json``, ``results-socketio.json`` (``-smoke`` before ``.json`` in smoke)."""
    return OUT / (PROTOCOLS[protocol][1] + ("-smoke" if smoke else "") + ".json")


def split_by_protocol(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The parts of a raw result, one per protocol that has scenarios in it."""
    keys = [key.split("/", 1) for key in raw["results"]]
    scenario_names = raw.get("scenarios") or list(dict.fromkeys(k[0] for k in keys))
    server_names = raw.get("servers") or list(dict.fromkeys(k[1] for k in keys))
    parts: dict[str, dict[str, Any]] = {}
    for proto in PROTOCOLS:
        names = [n for n in scenario_names if n in SCENARIOS and SCENARIOS[n].protocol == proto]
        if not names:
            continue
        servers = [n for n in server_names if n in SERVERS and proto in SERVERS[n].protocols]
        part = {k: v for k, v in raw.items() if k != "versions_by_protocol"}
        part["protocol"] = proto
        part["scenarios"] = names
        part["servers"] = servers
        part["versions"] = raw.get("versions_by_protocol", {}).get(proto, raw["versions"])
        part["results"] = {
            key: value
            for key, value in raw["results"].items()
            if key.split("/", 1)[0] in names and key.split("/", 1)[1] in servers
        }
        parts[proto] = part
    return parts


def report(raw: dict[str, Any], output: str | None) -> int:
    """Print the tables and write the markdown report; non-zero if tether failed.

    The report has one section per protocol. A protocol this run did not measure keeps
    its section, re-rendered from its last raw results file.
    """
    parts = split_by_protocol(raw)
    sections: list[str] = []
    failed_subject: list[str] = []
    peer_failures: list[str] = []
    for proto in PROTOCOLS:
        part = parts.get(proto)
        fresh = part is not None
        if part is None:
            path = results_path(proto, bool(raw["smoke"]))
            if not path.exists():
                continue
            part = split_by_protocol(json.loads(path.read_text())).get(proto)
            if part is None:
                continue
        text, failed, peers = render_part(part, print_tables=fresh, top=not sections)
        sections.append(text)
        if fresh:
            failed_subject += failed
            peer_failures += peers
    print(f"\n{raw['runs']} run(s), {raw.get('elapsed_s', 0):.0f} s")
    out_md = (
        Path(output)
        if output
        else (OUT / "RESULTS-smoke.md" if raw["smoke"] else BENCH / "RESULTS.md")
    )
    out_md.write_text("\n".join(sections))
    print(f"wrote {out_md}")
    for failure in peer_failures:
        print(f"bench: peer failure (not fatal): {failure}")
    if failed_subject:
        for failure in failed_subject:
            print(f"bench: {SUBJECT} failed: {failure}", file=sys.stderr)
        return 1
    return 0


def render_part(
    raw: dict[str, Any], print_tables: bool, top: bool
) -> tuple[str, list[str], list[str]]:
    """One protocol's tables: (markdown, subject failures, peer failures)."""
    proto = raw.get("protocol", "ws")
    subject, _, title = PROTOCOLS[proto]
    scenarios = [SCENARIOS[n] for n in raw["scenarios"] if n in SCENARIOS]
    servers = [SERVERS[n] for n in raw["servers"] if n in SERVERS]
    outcomes = {
        (key.split("/", 1)[0], key.split("/", 1)[1]): Outcome(**value)
        for key, value in raw["results"].items()
    }
    rows = results_rows(scenarios, servers, outcomes, subject=subject)
    eff = results_rows(scenarios, servers, outcomes, per_cpu=True, subject=subject)
    cpu, hot = cpu_rows(scenarios, servers, outcomes)
    if print_tables:
        print(f"\n{title}:")
        print(render_table(rows, markdown=False))
        print()
        print("the same rates per second of server CPU (user + system):")
        print(render_table(eff, markdown=False))
        print()
        print("load generator CPU (max over runs) / server CPU (median), % of one core:")
        print(render_table(cpu, markdown=False))
        if hot:
            print("generator near 100% (it may be the bottleneck): " + "; ".join(hot))

    failed_subject = [
        f"{sc.name}: {'; '.join(outcomes[(sc.name, subject)].failures)}"
        for sc in scenarios
        if (sc.name, subject) in outcomes
        and outcomes[(sc.name, subject)].failures
        and not outcomes[(sc.name, subject)].skipped
    ]
    peer_failures = [
        f"{srv.label} / {sc.name}: {'; '.join(outcomes[(sc.name, srv.name)].failures)}"
        for sc in scenarios
        for srv in servers
        if srv.name != subject
        and (sc.name, srv.name) in outcomes
        and outcomes[(sc.name, srv.name)].failures
    ]
    section = None if top and proto == "ws" else title
    text = markdown_report(raw, scenarios, rows, eff, cpu, hot, peer_failures, section)
    if top and section is not None:
        smoke = " (smoke run: not meaningful numbers)" if raw["smoke"] else ""
        text = f"# tether benchmarks{smoke}\n\n{text}"
    return text, failed_subject, peer_failures


def tls_built() -> bool:
    proc = subprocess.run([str(LOADGEN), "--tls"], capture_output=True, text=True, check=False)
    return "built without TLS" not in proc.stderr


def markdown_report(
    raw: dict[str, Any],
    scenarios: list[Scenario],
    rows: list[list[str]],
    eff: list[list[str]],
    cpu: list[list[str]],
    hot: list[str],
    peer_failures: list[str],
    section: str | None = None,
) -> str:
    """The whole report (``section`` None), or one protocol's section of it."""
    facts: dict[str, str] = raw["machine"]
    versions: dict[str, str] = raw["versions"]
    smoke: bool = raw["smoke"]
    proto = raw.get("protocol", "ws")
    h2 = "##" if section is None else "###"
    when = dt.datetime.fromisoformat(raw["date"]).strftime("%Y-%m-%d %H:%M UTC")
    title = (
        "# tether benchmarks" + (" (smoke run: not meaningful numbers)" if smoke else "")
        if section is None
        else f"## {section}"
    )
    generator = []
    if proto == "socketio":
        generator = [
            "- load generator: `bench/sio/loadgen.js`, one Node process of socket.io-client "
            "sockets (WebSocket transport only, no compression offered, no reconnection); "
            "python-socketio is `AsyncServer` on aiohttp's web server"
        ]
    lines = [
        title,
        "",
        f"- date: {when}",
        f"- machine: {facts['nproc']} cores ({facts['cpu']}), {facts['memory']}, "
        f"Linux {facts['kernel']}",
        f"- Python {facts['python']}, Node {facts['node']}",
        *([f"- tether at commit {facts['commit']}"] if "commit" in facts else []),
        f"- load average (1 min): {facts.get('load', '?')} (the benchmark itself adds about 2; "
        "more than that is other work sharing the machine)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- median of {raw['runs']} run(s) per cell; server pinned to core 0, load generator "
        "to core 1",
        *generator,
        "- all Python servers on uvloop; compression off everywhere; reproduce with "
        f"`bash bench/run.sh`; raw runs in `bench/out/{results_path(proto, smoke).name}`",
        "",
        "Ratios are tether / peer: above 1.00x is better for tether where higher is better, "
        "below 1.00x is better where lower is better (latency, memory).",
        "",
        render_table(rows, markdown=True),
        "",
        f"{h2} Per server CPU-second",
        "",
        "The same rates divided by the server's own CPU use in the same run (user + system, "
        "from /proc/PID/stat): what the work costs. This holds up better than the raw rate "
        "when other work shares the cores, but it does not show waiting (latency).",
        "",
        render_table(eff, markdown=True),
        "",
        f"{h2} Scenarios",
        "",
    ]
    for sc in scenarios:
        params = ", ".join(f"{k}={v}" for k, v in sc.args_for(smoke).items())
        note = f" {sc.note}" if sc.note else ""
        lines.append(f"- **{sc.name}**: {sc.title}.{note} (`{params}`)")
    lines += [
        "",
        f"{h2} CPU use",
        "",
        "Load generator CPU (max over runs; `!` marks >= 90%, where it may be the bottleneck) "
        "and server CPU (median), in % of one core, over the measurement window.",
        "",
        render_table(cpu, markdown=True),
        "",
    ]
    lines.append(
        "Generator near 100%: " + "; ".join(hot)
        if hot
        else "The generator stayed below 90% of its core in every scenario."
    )
    if peer_failures:
        lines += ["", f"{h2} Peer failures", ""] + [f"- {f}" for f in peer_failures]
    lines += [
        "",
        "Numbers come from a shared 2-core machine: other work may have run at the same time.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# profiling


def profile(args: argparse.Namespace) -> int:
    """py-spy on a Python server (tether by default) while the generator runs a scenario."""
    pyspy = Path(sys.executable).parent / "py-spy"
    if not pyspy.exists():
        print("bench: py-spy is not installed in bench/.venv", file=sys.stderr)
        return 2
    ctx = Context(
        smoke=False, python=sys.executable, logs=OUT / "logs", tls_ok=False, fd_limit=fd_limit()
    )
    ctx.logs.mkdir(parents=True, exist_ok=True)
    scenario = SCENARIOS[args.profile_scenario]
    duration = float(scenario.params.get("duration", 5)) + float(scenario.params.get("warmup", 0))
    server = SERVERS[args.profile_server or PROTOCOLS[scenario.protocol][0]]
    if not server.python_module:
        print(f"bench: {server.name} is not a Python server", file=sys.stderr)
        return 2
    handle = start_server(ctx, server, scenario.tls, ctx.logs / "profile-server.log")
    raw = OUT / f"profile-{server.name}-{scenario.name}.txt"
    try:
        spy = subprocess.Popen(
            [
                "taskset",
                "-c",
                "1",
                str(pyspy),
                "record",
                "--pid",
                str(handle.pid),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--rate",
                "200",
                "--duration",
                str(int(duration + 1)),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        result = scenario.driver(ctx, scenario, handle)
        spy.wait(timeout=duration + 30)
    finally:
        stop_server(handle)
    keys = ["ok", *[m.key for m in scenario.metrics], "server_cpu_pct"]
    print(f"load ({scenario.name}): {json.dumps({k: result.get(k) for k in keys})}")
    if not raw.exists():
        print(f"bench: py-spy wrote nothing: {spy.stderr.read() if spy.stderr else ''}")
        return 1
    print(summarize_profile(raw, args.profile_top))
    print(f"raw stacks: {raw.relative_to(ROOT)}")
    return 0


def summarize_profile(raw: Path, top: int) -> str:
    """Self time per source line and per function, inclusive time per function.

    Reads py-spy's collapsed stacks (``frame;frame;... count``, frames like
    ``name (file:line)``). Self time in the event loop's own frame is time spent in
    uvloop's C code and the kernel (I/O syscalls).
    """
    own_line: dict[str, int] = {}
    own_func: dict[str, int] = {}
    incl_func: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        own_line[frames[-1]] = own_line.get(frames[-1], 0) + count
        funcs = [function_of(f) for f in frames]
        own_func[funcs[-1]] = own_func.get(funcs[-1], 0) + count
        for func in set(funcs):
            incl_func[func] = incl_func.get(func, 0) + count
    if not total:
        return "no samples"

    def table(data: dict[str, int], title: str, n: int) -> str:
        ranked = sorted(data.items(), key=lambda kv: -kv[1])[:n]
        body = "\n".join(f"  {100 * c / total:5.1f}%  {frame}" for frame, c in ranked)
        return f"{title} ({total} samples)\n{body}"

    return "\n\n".join(
        [
            table(own_func, "self time by function", top),
            table(own_line, "self time by line", max(5, top // 2)),
            table(incl_func, "inclusive time by function", top),
        ]
    )


def function_of(frame: str) -> str:
    """``send (tether/x.py:12)`` -> ``send (tether/x.py)``."""
    name, sep, where = frame.rpartition(" (")
    if not sep:
        return frame
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, one run")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (median reported)")
    parser.add_argument(
        "--scenarios", type=lambda s: s.split(","), help=f"subset of {','.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--servers", type=lambda s: s.split(","), help=f"subset of {','.join(SERVERS)}"
    )
    parser.add_argument("--output", help="markdown report path (default by mode)")
    parser.add_argument("--from-json", help="re-render the report from a results JSON file")
    parser.add_argument("--profile", action="store_true", help="py-spy the tether server")
    parser.add_argument("--profile-scenario", default="echo-100")
    parser.add_argument(
        "--profile-server", help="default: the tether server of the scenario's protocol"
    )
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    for name in args.scenarios or []:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    for name in args.servers or []:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; known: {', '.join(SERVERS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.profile:
        return profile(args)
    if args.from_json:
        return report(json.loads(Path(args.from_json).read_text()), args.output)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
