"""Every code block of README.md and of every page under docs/ is checked: a new page is
covered without touching this file.

A ```python block is a whole program: it starts what it needs on 127.0.0.1, asserts what
the page says, and stops; it runs in a fresh interpreter, bounded in time, in a
directory of its page's own. A comment on the last line before a block changes that:

- ``<!-- sample: file NAME -->``: the block is the file NAME, written into the page's
  directory for the blocks after it (a Python file is also run once by itself, as a
  module is imported: ``if __name__ == "__main__"`` stays out);
- ``<!-- sample: client COMMAND -->``: the block is a client of a server the test starts
  first in the page's directory, ``COMMAND`` being ``tether ...`` or ``python FILE ...``
  (files of the page written before). The test waits for the server's first line with a
  URL, runs the block with that URL as its argument (``sys.argv[1]``), then stops the
  server with SIGTERM: it must exit 0;
- ``<!-- sample: server -->``: the block is itself a server that runs until SIGTERM: it
  must print its URL, then exit 0 on SIGTERM;
- ``<!-- sample: skip REASON -->``: not run (a Python block is still compiled).

The other languages are checked where a checker is at hand: ```nginx with ``nginx -t``
(a fragment inside the ``http`` block; skipped without nginx), ```json, ```toml and
```ini parsed. Any other language (shell, HTML, JavaScript, Dockerfile...) needs a
``skip`` reason or a ``file`` name. A block made of ``--8<-- "path"`` lines (the site's
snippets) is checked as the file it includes, which is the file the tests use.

Samples that talk to Redis use the one at 127.0.0.1:6379 (skipped when there is none,
except in CI where it always runs).
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.S | re.M,
)
MARKER = re.compile(r"^<!--\s*sample:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->$")
SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"$')
URL = re.compile(r"\b(?:https?|wss?)://\S+")

PYTHON = {"python", "py", "python3"}
PARSED = {"json", "toml", "ini", "nginx"}
KINDS = {"file", "client", "server", "skip"}

RUN_TIMEOUT = 60.0
SERVER_READY_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Block:
    page: str
    number: int
    lang: str
    code: str
    kind: str | None  # the marker's kind, None without one
    arg: str

    @property
    def where(self) -> str:
        return f"{self.page}#{self.number}"


def _dedent(body: str, indent: str) -> str:
    return "".join(
        line[len(indent) :] if line.startswith(indent) else line.lstrip()
        for line in body.splitlines(keepends=True)
    )


def _included(code: str) -> str:
    """The text of a block made of snippet lines (``--8<-- "path"``), else the block."""
    lines = [line.strip() for line in code.strip().splitlines()]
    paths = [SNIPPET.match(line) for line in lines]
    if not lines or not all(paths):
        return code
    return "".join((ROOT / m["path"]).read_text() for m in paths if m is not None)


def page_blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    blocks = []
    end = 0
    for number, match in enumerate(FENCE.finditer(text), 1):
        before = [line.strip() for line in text[end : match.start()].splitlines()]
        before = [line for line in before if line]
        marker = MARKER.match(before[-1]) if before else None
        end = match.end()
        blocks.append(
            Block(
                page,
                number,
                match["lang"].lower(),
                _included(_dedent(match["body"], match["indent"])),
                marker["kind"] if marker else None,
                marker["arg"] if marker else "",
            )
        )
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in page_blocks(page)]


BLOCKS = all_blocks()


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _needs_redis(block: Block) -> None:
    if "redis://" in block.code and not _redis_up():
        if os.environ.get("CI"):
            pytest.fail("no Redis at 127.0.0.1:6379 (CI starts one: see .ci/run)")
        pytest.skip("no Redis at 127.0.0.1:6379")


def _write_files(block: Block, directory: Path) -> None:
    """The page's ``file`` blocks before ``block``, in order (a later one of the same
    name replaces an earlier one, as the page reads)."""
    for other in page_blocks(block.page):
        if other.number >= block.number:
            break
        if other.kind == "file":
            path = directory / other.arg
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(other.code)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(argv: list[str], where: str, cwd: Path) -> None:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_env()
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"


def _command(text: str) -> list[str]:
    argv = shlex.split(text)
    if argv and argv[0] == "tether":
        return [sys.executable, "-m", "tether.cli", *argv[1:]]
    if argv and argv[0] == "python":
        return [sys.executable, *argv[1:]]
    raise AssertionError(f"a sample server is `tether ...` or `python FILE ...`, not {text!r}")


class Server:
    """A sample's server process: started in its own process group, its output read in
    threads, stopped with SIGTERM (and killed, by its group, if it does not stop)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True).start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            if lines is self.out and self.url is None and (found := URL.search(line)):
                self.url = found[0].rstrip(".,;)")
                self._ready.set()
        if lines is self.out:
            self._ready.set()  # it ended without a URL

    def output(self) -> str:
        return "".join(self.out) + "\n" + "".join(self.err)

    def wait_ready(self) -> str:
        self._ready.wait(SERVER_READY_TIMEOUT)
        assert self.url is not None, f"the server printed no URL:\n{self.output()}"
        return self.url

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not stop on SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@contextlib.contextmanager
def serving(argv: list[str], cwd: Path, where: str) -> Iterator[str]:
    server = Server(argv, cwd)
    try:
        url = server.wait_ready()
        yield url
        status = server.stop()
        assert status == 0, f"{where}: the server exited {status} on SIGTERM:\n{server.output()}"
    finally:
        if server.proc.poll() is None:
            server.kill()


def _nginx_test(conf: str, directory: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed")
    if not re.search(r"^\s*http\s*\{", conf, re.M):  # a fragment of the http block
        conf = "events {}\nhttp {\n" + conf + "\n}\n"
    if not re.search(r"^\s*pid\s", conf, re.M):
        conf = "pid nginx.pid;\n" + conf
    temp = "".join(
        f"    {name}_temp_path tmp/{name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if "_temp_path" not in conf:
        conf = re.sub(r"^(\s*http\s*\{)", r"\1\n" + temp, conf, count=1, flags=re.M)
    (directory / "tmp").mkdir()
    path = directory / "nginx.conf"
    path.write_text(conf)
    done = subprocess.run(
        [nginx, "-t", "-q", "-p", str(directory), "-c", str(path), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"nginx -t refused it:\n{done.stderr}\n{conf}"


def test_every_page_is_covered_and_has_samples() -> None:
    pages = {block.page for block in BLOCKS}
    assert "README.md" in pages and "docs/quickstart.md" in pages
    assert sum(block.lang in PYTHON and block.kind != "skip" for block in BLOCKS) >= 20


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_sample(block: Block, tmp_path: Path) -> None:
    where, lang, kind = block.where, block.lang, block.kind
    assert lang, f"{where}: give the block a language (```python, ```sh, ...)"
    assert kind is None or kind in KINDS, f"{where}: unknown sample kind {kind!r}"
    if kind == "skip":
        assert block.arg, f"{where}: say why it is skipped: <!-- sample: skip REASON -->"
    if lang not in PYTHON and lang not in PARSED:
        assert kind in ("skip", "file"), (
            f"{where}: nothing can check a ```{lang} block: mark it"
            " <!-- sample: skip REASON --> or <!-- sample: file NAME -->"
        )
    if lang in PYTHON:
        compile(block.code, where, "exec")  # every Python block is valid Python at least
    if kind == "skip":
        pytest.skip(block.arg)
    if lang == "json":
        json.loads(block.code)
    elif lang == "toml":
        tomllib.loads(block.code)
    elif lang == "ini":
        configparser.ConfigParser(strict=False, interpolation=None).read_string(block.code)
    elif lang == "nginx":
        _nginx_test(block.code, tmp_path)
    if lang not in PYTHON:
        return
    _needs_redis(block)
    _write_files(block, tmp_path)
    if kind == "file":
        assert block.arg.endswith(".py"), f"{where}: a Python file's name ends in .py"
        (tmp_path / block.arg).write_text(block.code)
        load = f"import runpy; runpy.run_path({block.arg!r}, run_name='sample')"
        _run([sys.executable, "-c", load], where, tmp_path)
        return
    script = tmp_path / "_sample.py"
    script.write_text(block.code)
    if kind == "server":
        with serving([sys.executable, str(script)], tmp_path, where):
            pass  # it started and printed its URL: now it must stop on SIGTERM
        return
    if kind == "client":
        assert block.arg, f"{where}: <!-- sample: client COMMAND --> names the server"
        with serving(_command(block.arg), tmp_path, where) as url:
            _run([sys.executable, str(script), url], where, tmp_path)
        return
    _run([sys.executable, str(script)], where, tmp_path)
