"""Fixtures shared by every test layer.

- ``free_port``: a TCP port on 127.0.0.1 that was free a moment ago.
- ``node``: a :class:`Node` handle to run the Node.js helpers in ``tests/node`` (the ``ws``
  reference peers, socket.io, the headless-Chromium driver). Skips only when ``node`` itself
  is missing; installs ``tests/node/node_modules`` with ``npm ci`` when they are absent.
- ``chromium``: the path to Debian's headless Chromium (skips when it is not installed; see
  ``tests/node/install-system-packages.sh``).

Every child process is started as the leader of its own process group and, when it outlives
its time budget or the test, killed through that group id, so a browser started by a
helper script dies with it. Nothing here waits without a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
NODE_DIR = TESTS_DIR / "node"
CHROMIUM_PATH = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))

NPM_CI_TIMEOUT = 300.0
STOP_GRACE = 3.0


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (it may be taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    return find_free_port()


def _kill_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (a child we started as a group leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass(frozen=True)
class NodeResult:
    """Outcome of one bounded run of a Node.js script."""

    args: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool

    def json(self) -> Any:
        """Parse the last non-empty stdout line as JSON (the helpers print one JSON line)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"no output from {' '.join(self.args)}\n{self.describe()}")
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"last stdout line is not JSON: {exc}\n{self.describe()}"
            ) from None

    def describe(self) -> str:
        state = "timed out" if self.timed_out else f"exit code {self.returncode}"
        return (
            f"$ {' '.join(self.args)}\n({state})\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


@dataclass
class NodeProcess:
    """A long-running Node.js helper (a reference server). Stop it with :meth:`stop`."""

    args: tuple[str, ...]
    proc: subprocess.Popen[str]
    ready_line: str = ""
    _stderr: list[str] = field(default_factory=list)
    _stdout: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        """The port from a ``READY <port>`` line."""
        return int(self.ready_line.split()[1])

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def stop(self) -> int | None:
        """Terminate, wait a little, then kill; always returns within a few seconds."""
        if self.proc.poll() is None:
            # Closing stdin asks the helper to exit cleanly; SIGTERM and SIGKILL follow.
            with contextlib.suppress(OSError):
                if self.proc.stdin:
                    self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
        if self.proc.poll() is None:
            _kill_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_GRACE)
        if self.proc.poll() is None:
            _kill_group(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_GRACE)
        # Children (if any) of the helper share its group: make sure none is left behind.
        _kill_group(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Node:
    """Runs the scripts in ``tests/node`` with a time bound, killing overruns by PID."""

    def __init__(self, exe: str, directory: Path) -> None:
        self.exe = exe
        self.dir = directory

    def script(self, name: str) -> Path:
        path = self.dir / name
        if not path.is_file():
            raise FileNotFoundError(path)
        return path

    def _argv(self, script: str, args: tuple[object, ...]) -> tuple[str, ...]:
        return (self.exe, str(self.script(script)), *(str(a) for a in args))

    def run(self, script: str, *args: object, timeout: float = 30.0) -> NodeResult:
        """Run a script to completion (blocking). Do not call from a running event loop."""
        argv = self._argv(script, args)
        proc = subprocess.Popen(
            argv,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=STOP_GRACE)
        finally:
            _kill_group(proc.pid, signal.SIGKILL)
        return NodeResult(argv, proc.returncode, stdout, stderr, timed_out)

    async def arun(self, script: str, *args: object, timeout: float = 30.0) -> NodeResult:
        """Run a script to completion without blocking the event loop.

        Use this when the peer under test (a tether server) lives in the same loop.
        """
        argv = self._argv(script, args)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        out_task = asyncio.ensure_future(proc.stdout.read())
        err_task = asyncio.ensure_future(proc.stderr.read())
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
        finally:
            # Runs on timeout and on cancellation alike: nothing outlives the call.
            _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
        done, pending = await asyncio.wait({out_task, err_task}, timeout=STOP_GRACE)
        for task in pending:
            task.cancel()
        stdout = out_task.result().decode(errors="replace") if out_task in done else ""
        stderr = err_task.result().decode(errors="replace") if err_task in done else ""
        return NodeResult(argv, proc.returncode, stdout, stderr, timed_out)

    def start(
        self, script: str, *args: object, ready: str = "READY", timeout: float = 15.0
    ) -> NodeProcess:
        """Start a long-running helper and wait (bounded) for a stdout line starting ``ready``.

        The helper keeps stdin open; closing it is the polite way to stop it.
        """
        argv = self._argv(script, args)
        proc = subprocess.Popen(
            argv,
            cwd=self.dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        handle = NodeProcess(argv, proc)
        found = threading.Event()

        def pump_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                handle._stdout.append(line)
                if not found.is_set() and line.startswith(ready):
                    handle.ready_line = line.strip()
                    found.set()

        def pump_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                handle._stderr.append(line)

        # Readers drain both pipes for the life of the helper so it never blocks on a full pipe.
        pumps = [
            threading.Thread(target=pump_stdout, daemon=True),
            threading.Thread(target=pump_stderr, daemon=True),
        ]
        for pump in pumps:
            pump.start()

        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                handle.stop()
                for pump in pumps:  # the process is gone: its pipes reach EOF
                    pump.join(timeout=2)
                state = "exited" if proc.returncode is not None else "timed out"
                raise RuntimeError(
                    f"{' '.join(argv)} {state} before printing {ready!r}\n"
                    f"--- stdout ---\n{''.join(handle._stdout)}\n"
                    f"--- stderr ---\n{handle.stderr}"
                )
        return handle

    async def abrowse(
        self,
        url: str,
        *,
        wait: str | None = None,
        result: str | None = None,
        screenshot: Path | str | None = None,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Open ``url`` in headless Chromium (``browser.js``) and return its JSON report."""
        args: list[object] = ["--url", url, "--timeout", int(timeout * 1000)]
        if wait is not None:
            args += ["--wait", wait]
        if result is not None:
            args += ["--result", result]
        if screenshot is not None:
            args += ["--screenshot", screenshot]
        res = await self.arun("browser.js", *args, timeout=timeout + 15.0)
        report: dict[str, Any] = res.json()
        report["_run"] = res
        return report


def _ensure_node_modules(npm: str | None) -> None:
    if (NODE_DIR / "node_modules" / "ws" / "package.json").is_file() and (
        NODE_DIR / "node_modules" / "playwright-core" / "package.json"
    ).is_file():
        return
    if npm is None:
        pytest.fail(
            f"{NODE_DIR}/node_modules is missing and npm is not on PATH: run `make node-deps`"
        )
    try:
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm ci` in {NODE_DIR} took more than {NPM_CI_TIMEOUT:.0f}s")
    if proc.returncode != 0:
        pytest.fail(f"`npm ci` in {NODE_DIR} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def node() -> Node:
    exe = os.environ.get("NODE") or shutil.which("node")
    if exe is None:
        pytest.skip("Node.js (`node`) is not on PATH: the Node.js peer tests need it")
    _ensure_node_modules(shutil.which("npm"))
    return Node(exe, NODE_DIR)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not (CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)):
        pytest.skip(f"{CHROMIUM_PATH} is missing: run tests/node/install-system-packages.sh")
    return CHROMIUM_PATH


@pytest.fixture
def node_server(node: Node) -> Iterator[Any]:
    """Factory: ``node_server("ws_echo_server.js", "--port", 0)`` -> a started NodeProcess.

    Every helper started through it is stopped at the end of the test.
    """
    started: list[NodeProcess] = []

    def start(
        script: str, *args: object, ready: str = "READY", timeout: float = 15.0
    ) -> NodeProcess:
        handle = node.start(script, *args, ready=ready, timeout=timeout)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A real Redis Cluster of this test session (tests/redis_cluster.py): three
    primaries with a replica each, on loopback ports; stopped by PID at the end."""
    from redis_cluster import REDIS_CLI, REDIS_SERVER, RedisClusterProcesses

    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server and redis-cli are needed for the Redis Cluster tests")
    cluster = RedisClusterProcesses()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
