"""Fixtures of the broker tests.

- ``make_node``: a factory of started brokers of one cluster, parametrized over
  :class:`MemoryBroker` (one shared :class:`MemoryCluster`), :class:`RedisBroker` (the
  shared Redis at 127.0.0.1:6379, a prefix of its own per test) and
  :class:`RedisClusterBroker` (the session's Redis Cluster, ``redis_cluster``). Every
  node is closed at the end of the test.
- ``own_redis``: a ``redis-server`` of the test's own on a free loopback port, for tests
  that stop, restart or break Redis. It is stopped by PID at the end.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tether.broker import ClusterBroker, MemoryBroker, MemoryCluster, RedisBroker
from tether.broker.redis_cluster import RedisClusterBroker

SHARED_REDIS = "redis://127.0.0.1:6379/0"
FAST = {"heartbeat_interval": 0.3, "ping_interval": 0.3, "reconnect_max": 0.3}


def find_free_port() -> int:
    """A free port below the kernel's ephemeral range.

    A Redis the test restarts leaves its port unbound for a moment; a port from bind(0)
    could then be handed to a socket of another test running on this machine.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-30000")


def redis_up(host: str = "127.0.0.1", port: int = 6379) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def make_node(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    nodes: list[ClusterBroker] = []
    cluster = MemoryCluster()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    if request.param == "redis" and not redis_up():
        pytest.skip("no Redis at 127.0.0.1:6379")

    cluster_url = (
        request.getfixturevalue("redis_cluster").url if request.param == "redis-cluster" else ""
    )

    async def make(**options: Any) -> ClusterBroker:
        node: ClusterBroker
        if request.param == "memory":
            node = MemoryBroker(cluster=cluster, **options)
        elif request.param == "redis-cluster":
            node = RedisClusterBroker(cluster_url, prefix=prefix, **{**FAST, **options})
        else:
            node = RedisBroker(SHARED_REDIS, prefix=prefix, **{**FAST, **options})
        nodes.append(node)
        await node.start()
        return node

    yield make
    for node in nodes:
        await node.close()


class OwnRedis:
    """A redis-server of the test's own; restartable on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10.0
        while not redis_up(port=self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)
        # Something answers on the port: make sure it is our redis-server.
        if self.proc.poll() is not None or self.cli("PING") != "PONG":
            raise RuntimeError(f"port {self.port} is not our redis-server")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10.0,
            check=True,
        )
        return out.stdout.strip()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = OwnRedis(find_free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
