"""Fixtures of the realtime tests.

- ``hub_server``: a factory that starts ``hub_reference_server.py`` (tether's Hub twin of
  ``tests/node/sio_reference_server.js``) as a child process with this interpreter, waits
  (bounded) for its ``READY <port>`` line and stops it at the end of the test: stdin closed
  first (the polite way), then SIGTERM and SIGKILL to its own process group, by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from .cluster_helpers import Cluster

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
HUB_SERVER = HERE / "hub_reference_server.py"
READY_TIMEOUT = 15.0
STOP_GRACE = 3.0


class ServerProcess:
    """A reference server child process; :meth:`stop` always returns within seconds."""

    def __init__(self, argv: list[str]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
            env=env,
        )
        self.ready_line = ""
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._ready = threading.Event()
        # Both pipes are drained for the life of the child so it never blocks on them.
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout.append(line)
            if not self._ready.is_set() and line.startswith("READY"):
                self.ready_line = line.strip()
                self._ready.set()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        """The port from the ``READY <port>`` line."""
        return int(self.ready_line.split()[1])

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> ServerProcess:
        """Wait (bounded) for the READY line; raise with the child's output otherwise."""
        step = 0.05
        waited = 0.0
        while not self._ready.wait(step):
            waited += step
            if self.proc.poll() is not None or waited > timeout:
                self.stop()
                state = "exited" if self.proc.returncode is not None else "timed out"
                raise RuntimeError(
                    f"{' '.join(self.argv)} {state} before printing READY\n"
                    f"--- stdout ---\n{''.join(self._stdout)}\n--- stderr ---\n{self.stderr}"
                )
        return self

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> int | None:
        """Close stdin, then SIGTERM, then SIGKILL (the child's own process group)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                if self.proc.stdin:
                    self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is None:
                self._signal_group(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=STOP_GRACE)
        return self.proc.returncode


@pytest.fixture
def hub_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``hub_server("--port", 0, "--recovery")`` -> a started, ready server."""
    started: list[ServerProcess] = []

    def start(*args: object) -> ServerProcess:
        handle = ServerProcess([sys.executable, str(HUB_SERVER), *(str(a) for a in args)])
        started.append(handle)
        return handle.wait_ready()

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """Three hubs as one server: on a shared MemoryCluster, on the real Redis, and on a
    real Redis Cluster (sharded pub/sub)."""
    url = request.getfixturevalue("redis_cluster").url if request.param == "redis-cluster" else ""
    c = await Cluster(request.param, cluster_url=url).start()
    try:
        yield c
    finally:
        await c.close()
