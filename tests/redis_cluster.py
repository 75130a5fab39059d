"""A real Redis Cluster on loopback ports for the tests: three primaries and a replica
of each (``redis-server --cluster-enabled yes`` + ``redis-cli --cluster create``), nothing
on disk. Started once per test session when a test asks for it; stopped by PID.

``RedisClusterProcesses.failover(port)`` promotes the replica of the primary on ``port``
with ``CLUSTER FAILOVER`` (no data lost: the primary hands over once the replica has
every write) and waits until the cluster agrees.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def _free_ports(count: int) -> list[int]:
    """``count`` free ports with their cluster-bus ports (port + 10000) free too."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 30000)
        if port in ports:
            continue
        ok = True
        for candidate in (port, port + 10000):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", candidate))
                except OSError:
                    ok = False
        if ok:
            ports.append(port)
    return ports


class RedisClusterProcesses:
    """Six redis-server processes forming one cluster."""

    def __init__(self) -> None:
        self.ports = _free_ports(6)
        self.dir = Path(tempfile.mkdtemp(prefix="tether-redis-cluster-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def cli(self, port: int, *args: str, timeout: float = 10.0) -> str:
        assert REDIS_CLI is not None
        done = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout

    def start(self) -> RedisClusterProcesses:
        assert REDIS_SERVER is not None and REDIS_CLI is not None
        for port in self.ports:
            work = self.dir / str(port)
            work.mkdir()
            argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"]
            argv += ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
            argv += ["--cluster-config-file", str(work / "nodes.conf")]
            argv += ["--save", "", "--appendonly", "no", "--dir", str(work)]
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        for port in self.ports:
            self._wait_port(port)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        self.cli(
            self.ports[0],
            "--cluster",
            "create",
            *nodes,
            "--cluster-replicas",
            "1",
            "--cluster-yes",
            timeout=60,
        )
        self.wait_ok()
        return self

    def _wait_port(self, port: int) -> None:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                return
            time.sleep(0.05)
        raise AssertionError(f"redis-server on {port} did not start")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says the cluster is ok and agrees on the slot map."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [self.cli(p, "cluster", "info") for p in self.ports]
            if all("cluster_state:ok" in s for s in states):
                views = {self._primaries(p) for p in self.ports}
                if len(views) == 1:
                    return
            time.sleep(0.1)
        raise AssertionError("the Redis Cluster did not become ok")

    def _primaries(self, port: int) -> frozenset[str]:
        lines = self.cli(port, "cluster", "nodes").splitlines()
        return frozenset(
            line.split()[1].split("@")[0] for line in lines if "master" in line.split()[2]
        )

    def primaries(self) -> list[int]:
        return sorted(int(a.rsplit(":", 1)[1]) for a in self._primaries(self.ports[0]))

    def replica_of(self, primary: int) -> int:
        lines = self.cli(primary, "cluster", "nodes").splitlines()
        me = next(line.split()[0] for line in lines if "myself" in line)
        for line in lines:
            fields = line.split()
            if fields[3] == me:
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise AssertionError(f"no replica of {primary}")

    def owner_of(self, key: str) -> int:
        slot = int(self.cli(self.ports[0], "cluster", "keyslot", key))
        owner = self._slot_owner(self.ports[0], slot)
        if owner is None:
            raise AssertionError(f"no owner of {key}")
        return owner

    def failover(self, primary: int) -> int:
        """Promote the replica of ``primary``; returns the new primary's port."""
        replica = self.replica_of(primary)
        assert self.cli(replica, "cluster", "failover").strip() == "OK"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if replica in self.primaries() and primary not in self.primaries():
                self.wait_ok()
                return replica
            time.sleep(0.05)
        raise AssertionError(f"failover of {primary} to {replica} did not happen")

    def move_slot_of(self, key: str) -> int:
        """Move the hash slot of ``key`` to another primary (``CLUSTER SETSLOT``, as
        resharding does; the slot holds no keys of the test); returns the new owner."""
        slot = int(self.cli(self.ports[0], "cluster", "keyslot", key))
        source = self.owner_of(key)
        target = next(p for p in self.primaries() if p != source)
        source_id = self.cli(source, "cluster", "myid").strip()
        target_id = self.cli(target, "cluster", "myid").strip()
        self.cli(target, "cluster", "setslot", str(slot), "importing", source_id)
        self.cli(source, "cluster", "setslot", str(slot), "migrating", target_id)
        for port in (target, source):
            self.cli(port, "cluster", "setslot", str(slot), "node", target_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(self._slot_owner(p, slot) == target for p in self.ports):
                self.wait_ok()
                return target
            time.sleep(0.05)
        raise AssertionError(f"slot {slot} did not move to {target}")

    def _slot_owner(self, port: int, slot: int) -> int | None:
        for line in self.cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2]:
                continue
            for part in fields[8:]:
                lo, _, hi = part.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        return None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
