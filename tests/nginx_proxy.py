"""A real nginx in front of tether nodes, with the configuration of
``examples/nginx/nginx.conf`` (plain round robin, no affinity) and a test's ports.

``nginx(tmp, ports)`` runs it with its own prefix under ``tmp`` and yields the port it
listens on; it is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_config(ports: list[int], listen: int) -> str:
    """The example configuration with this test's ports."""
    text = CONFIG.read_text()
    for example, port in zip((8001, 8002, 8003), ports, strict=True):
        text = text.replace(f"127.0.0.1:{example};", f"127.0.0.1:{port};")
    text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    assert not re.search(r"127\.0\.0\.1:80\d\d;", text), "the example's ports changed"
    return text


@contextlib.contextmanager
def nginx(tmp: Path, ports: list[int]) -> Any:
    listen = free_port()
    prefix = tmp / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(ports, listen))
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen), 0.1):
                break
            if proc.poll() is not None:
                raise AssertionError(f"nginx did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield listen
    finally:
        os.kill(proc.pid, signal.SIGQUIT)  # graceful stop, by its PID
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
