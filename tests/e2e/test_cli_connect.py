"""``tether connect``: marks, the terminal prompt, history and acknowledgements, end to end.

Each test runs ``python -m tether.cli connect`` as a real process against a server served
in-process on 127.0.0.1: tether's own WebSocket server (:func:`tether.serve`) with an echo
handler, or a tether Hub. Piped, the test writes stdin and reads stdout and stderr line by
line. On a terminal, stdin and stdout are the slave side of a pseudo-terminal (so both are
``isatty()``) and the test types on the master side, escape sequences included (``\\x1b[A``
is the up arrow, ``\\x04`` Ctrl-D), and reads what the screen would show; stderr stays a
pipe. ``HOME`` and ``XDG_STATE_HOME`` point into a temporary directory, so the history
file is the test's. Every wait is bounded; processes are stopped by their PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import signal
import stat
import struct
import sys
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.asyncio import WebSocket
from tether.cli_connect import HISTORY_LENGTH, format_event, parse_line
from tether.realtime import Hub, Socket

HOST = "127.0.0.1"
WAIT = 15.0  # the bound on any single wait; never reached when things work
UP, ENTER, CTRL_D = "\x1b[A", "\r", "\x04"
# The control sequences a terminal acts on (ECMA-48 CSI, OSC, two-byte ESC), and the rest.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]|[\r\n\x07\x08]")


def render(output: str) -> str:
    """What a terminal shows after ``output``, line by line (wrapping aside): carriage
    return, backspace and erase-to-end-of-line (``ESC [ K``) are done; the other control
    sequences (colours, modes) are dropped."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    pos = 0

    def put(text: str) -> None:
        nonlocal col
        for char in text:
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1

    for match in _CONTROL.finditer(output):
        put(output[pos : match.start()])
        pos = match.end()
        code = match.group()
        if code == "\r":
            col = 0
        elif code == "\n":
            lines.append("".join(line))
            line, col = [], 0
        elif code == "\x08":
            col = max(0, col - 1)
        elif code in ("\x1b[K", "\x1b[0K"):
            del line[col:]
    put(output[pos:])
    return "\n".join([*lines, "".join(line)])


# --------------------------------------------------------------------------- servers


async def _handler(ws: WebSocket) -> None:
    """Echo, except: ``bin`` answers 3 bytes, ``later`` answers ``tick`` after a moment,
    ``close`` closes the connection."""
    async for message in ws:
        if message == "bin":
            await ws.send(b"\x00\x01\xff")
        elif message == "later":
            await asyncio.sleep(0.5)
            await ws.send("tick")
        elif message == "close":
            await ws.close(1000)
        else:
            await ws.send(message)


@pytest.fixture
async def ws_url() -> AsyncIterator[str]:
    server = await tether.serve(_handler, HOST, 0)
    yield f"ws://{HOST}:{server.port}/"
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), WAIT)


@pytest.fixture
async def sio_url() -> AsyncIterator[tuple[str, list[Any]]]:
    """A hub: ``sum`` acknowledges with the sum; ``askme`` emits ``ask`` to the client
    with an acknowledgement and records the answer."""
    hub = Hub()
    answers: list[Any] = []

    @hub.on("sum")
    async def add(socket: Socket, *numbers: int) -> int:
        return sum(numbers)

    @hub.on("askme")
    async def askme(socket: Socket) -> None:
        answers.append(await socket.emit_with_ack("ask", "ready?", timeout=WAIT))

    server = await hub.serve(HOST, 0)
    yield f"http://{HOST}:{server.port}", answers
    await hub.close()
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), WAIT)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a process whose home is a fresh directory."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1", TERM="xterm")
    env.pop("XDG_STATE_HOME", None)
    (tmp_path / "home").mkdir()
    return env


# --------------------------------------------------------------------------- piped


class Piped:
    """A ``tether connect`` on pipes: bounded line reads on stdout and stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: asyncio.Queue[str | None] = asyncio.Queue()
        self.err_lines: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [
            asyncio.ensure_future(self._pump(proc.stdout, self.out, [])),
            asyncio.ensure_future(self._pump(proc.stderr, asyncio.Queue(), self.err_lines)),
        ]

    @staticmethod
    async def _pump(
        stream: asyncio.StreamReader, queue: asyncio.Queue[str | None], keep: list[str]
    ) -> None:
        while line := await stream.readline():
            text = line.decode().rstrip("\n")
            keep.append(text)
            queue.put_nowait(text)
        queue.put_nowait(None)

    async def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def line(self) -> str | None:
        return await asyncio.wait_for(self.out.get(), WAIT)

    async def notice(self, contains: str) -> str:
        async with asyncio.timeout(WAIT):
            while True:
                for line in self.err_lines:
                    if contains in line:
                        return line
                await asyncio.sleep(0.02)

    async def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.wait_closed()

    async def wait(self) -> int:
        await asyncio.wait_for(self.proc.wait(), WAIT)
        await asyncio.wait(self._pumps, timeout=WAIT)
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def rest(self) -> list[str]:
        """The stdout lines up to the end."""
        lines = []
        while (line := await self.line()) is not None:
            lines.append(line)
        return lines

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), WAIT)
        for pump in self._pumps:
            pump.cancel()


# --------------------------------------------------------------------------- terminal


class Tty:
    """A ``tether connect`` whose stdin and stdout are a pseudo-terminal."""

    def __init__(
        self, proc: asyncio.subprocess.Process, master: int, slave: int, modes: int
    ) -> None:
        self.proc = proc
        self.master, self.slave = master, slave
        #: The terminal's local modes before the process started.
        self.initial_modes = modes
        self.raw = bytearray()
        self.seen = 0  # where in screen() the next expect() starts
        self.err_lines: list[str] = []
        self._changed = asyncio.Event()
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._read)
        assert proc.stderr is not None
        self._pump = asyncio.ensure_future(self._errors(proc.stderr))

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: no process holds the slave side any more
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.raw += data
        self._changed.set()

    async def _errors(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.err_lines.append(line.decode().rstrip("\n"))
            self._changed.set()

    def screen(self) -> str:
        """What the terminal shows (see :func:`render`)."""
        return render(self.raw.decode(errors="replace"))

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"no {what}; screen:\n{self.screen()}\nraw: {bytes(self.raw)!r}\nstderr:\n"
                + "\n".join(self.err_lines)
            ) from None

    async def expect(self, text: str) -> None:
        """Wait until ``text`` is on the screen after the lines the last expect() saw.

        The search goes on from the start of the line where the last match ended: that
        line may still change (the prompt line is erased and drawn again), the ones
        before it no more.
        """

        def found() -> bool:
            screen = self.screen()
            at = screen.find(text, self.seen)
            if at < 0:
                return False
            self.seen = screen.rfind("\n", 0, at + len(text)) + 1
            return True

        await self._until(found, repr(text))

    async def expect_raw(self, data: bytes) -> None:
        """Wait until the exact bytes ``data`` were written to the terminal."""
        await self._until(lambda: data in self.raw, repr(data))

    async def notice(self, contains: str) -> str:
        await self._until(lambda: any(contains in line for line in self.err_lines), contains)
        return next(line for line in self.err_lines if contains in line)

    async def reading(self) -> None:
        """Wait until readline reads the terminal (raw: what is typed is not echoed by
        the terminal itself, which it would be before)."""
        try:
            async with asyncio.timeout(WAIT):
                while self.modes() & termios.ICANON:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"readline is not reading; screen:\n{self.screen()}") from None

    async def type(self, text: str) -> None:
        """Type ``text`` once readline reads the terminal (what is typed before would be
        echoed by the terminal too, and a Ctrl-D there is lost)."""
        await self.reading()
        os.write(self.master, text.encode())

    def modes(self) -> int:
        """The terminal's local modes now (``c_lflag``)."""
        return int(termios.tcgetattr(self.slave)[3])

    async def wait(self) -> int:
        await asyncio.wait_for(self.proc.wait(), WAIT)
        await asyncio.wait([self._pump], timeout=WAIT)
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), WAIT)
        self._pump.cancel()
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
async def cli() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await cli(*args, env=..., tty=False)``: a started ``tether connect``."""
    started: list[Piped | Tty] = []

    async def start(*args: str, env: dict[str, str], tty: bool = False) -> Any:
        command = [sys.executable, "-m", "tether.cli", "connect", *args]
        if not tty:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            handle: Piped | Tty = Piped(proc)
        else:
            master, slave = os.openpty()
            # A wide terminal: no line of the test wraps.
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
            modes = int(termios.tcgetattr(slave)[3])
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=slave, stdout=slave, stderr=asyncio.subprocess.PIPE, env=env
            )
            handle = Tty(proc, master, slave, modes)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        await handle.kill()


# --------------------------------------------------------------------------- piped: marks


async def test_piped_output_is_unmarked_by_default(cli: Any, ws_url: str, home: Any) -> None:
    proc = await cli(ws_url, env=home)
    assert await proc.line() == f"connected to {ws_url} (Ctrl-D to close)"
    await proc.send("hello")
    assert await proc.line() == "hello"
    await proc.send("bin")
    assert await proc.line() == "<binary, 3 bytes: 00 01 ff>"
    await proc.close_stdin()
    assert await proc.rest() == ["connection closed: code 1000"]
    assert await proc.wait() == 0


async def test_piped_output_with_marks(cli: Any, ws_url: str, home: Any) -> None:
    proc = await cli("--marks", ws_url, env=home)
    await proc.send("hello")
    assert await proc.line() == "> hello"
    assert await proc.line() == "< hello"
    await proc.send("bin")
    assert await proc.line() == "> bin"
    assert await proc.line() == "< <binary, 3 bytes: 00 01 ff>"
    await proc.close_stdin()
    assert await proc.rest() == []  # with marks, stdout has marked lines only
    assert await proc.wait() == 0
    assert proc.err_lines == [
        f"connected to {ws_url} (Ctrl-D to close)",
        "connection closed: code 1000",
    ]


async def test_sio_piped_with_marks_and_acks(
    cli: Any, sio_url: tuple[str, list[Any]], home: Any
) -> None:
    url, answers = sio_url
    proc = await cli("--sio", "--marks", "--reply", '["yes", 2]', url, env=home)
    await proc.notice("connected to /")
    await proc.send("?sum [1, 2]")
    assert await proc.line() == "> ?sum [1, 2]"
    assert await proc.line() == "< ack sum [3]"
    await proc.send("askme")
    assert await proc.line() == "> askme []"
    assert await proc.line() == '< ?ask ["ready?"]'
    assert await proc.line() == '> ack ask ["yes", 2]'
    await proc.close_stdin()
    assert await proc.rest() == []
    assert await proc.wait() == 0
    assert answers == [("yes", 2)]


# --------------------------------------------------------------------------- terminal


async def test_terminal_marks_history_and_history_file(
    cli: Any, ws_url: str, home: dict[str, str]
) -> None:
    tty = await cli(ws_url, env=home, tty=True)
    assert "connected to" in await tty.notice("connected")  # a notice: on stderr
    await tty.expect("> ")
    await tty.type("hello" + ENTER)
    await tty.expect("> hello\n")  # the typed line stays on the screen, marked
    await tty.expect("< hello\n")
    await tty.type(UP + ENTER)  # the up arrow recalls "hello": sent again
    await tty.expect("> hello\n")
    await tty.expect("< hello\n")
    await tty.type("wörld" + ENTER)
    await tty.expect("< wörld\n")
    await tty.type(CTRL_D)
    assert await tty.wait() == 0
    assert "connection closed: code 1000" in tty.err_lines
    assert tty.screen().count("< hello") == 2
    history = Path(home["HOME"]) / ".tether_history"
    # One "hello": a line repeated at once is kept once.
    assert history.read_text().splitlines() == ["hello", "wörld"]
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


async def test_terminal_history_is_kept_across_runs_in_xdg_state_home(
    cli: Any, ws_url: str, home: dict[str, str], tmp_path: Path
) -> None:
    env = dict(home, XDG_STATE_HOME=str(tmp_path / "state"))
    history = tmp_path / "state" / "tether" / "history"
    history.parent.mkdir(parents=True)
    history.write_text("".join(f"old {n}\n" for n in range(HISTORY_LENGTH + 50)))
    tty = await cli(ws_url, env=env, tty=True)
    await tty.expect("> ")
    await tty.type(UP + UP + ENTER)  # the line before the last one of the earlier runs
    await tty.expect(f"< old {HISTORY_LENGTH + 48}\n")
    await tty.type("new" + ENTER)
    await tty.expect("< new\n")
    await tty.type(CTRL_D)
    assert await tty.wait() == 0
    lines = history.read_text().splitlines()
    assert lines[-2:] == [f"old {HISTORY_LENGTH + 48}", "new"]
    assert len(lines) <= HISTORY_LENGTH  # bounded
    assert not (Path(home["HOME"]) / ".tether_history").exists()


async def test_terminal_without_a_writable_history_still_works(
    cli: Any, ws_url: str, home: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    env = dict(home, XDG_STATE_HOME=str(tmp_path / "a-file" / "state"))  # cannot be made
    tty = await cli(ws_url, env=env, tty=True)
    assert "a-file" in await tty.notice("history not saved")
    await tty.type("still" + ENTER)
    await tty.expect("< still\n")
    await tty.type(UP + ENTER)  # kept in memory
    await tty.expect("< still\n")
    await tty.type(CTRL_D)
    assert await tty.wait() == 0


async def test_terminal_prompt_is_redrawn_under_what_arrives(
    cli: Any, ws_url: str, home: dict[str, str]
) -> None:
    tty = await cli(ws_url, env=home, tty=True)
    await tty.expect("> ")
    await tty.type("later" + ENTER)  # "tick" comes half a second later...
    await tty.expect("> later\n")
    await tty.type("abc")  # ...while this is being typed
    # The prompt line is erased, "tick" printed, the prompt drawn again with "abc".
    await tty.expect_raw(b"\r\x1b[K< tick\r\n> abc")
    await tty.type("d" + ENTER)
    await tty.expect("< abcd\n")
    await tty.type(CTRL_D)
    assert await tty.wait() == 0


@pytest.mark.parametrize("how", ["server closes", "SIGINT"])
async def test_terminal_modes_are_restored_when_the_connection_ends_mid_line(
    cli: Any, ws_url: str, home: dict[str, str], how: str
) -> None:
    tty = await cli(ws_url, env=home, tty=True)
    await tty.notice("connected")
    await tty.expect("> ")
    before = tty.initial_modes
    assert before & termios.ICANON and before & termios.ECHO
    if how == "server closes":
        await tty.type("close" + ENTER)
        await tty.expect("> close\n")
    else:
        await tty.type("half a li")
        await tty.expect("> half a li")
        # readline reads the terminal raw while a line is typed.
        assert not tty.modes() & termios.ICANON
        os.kill(tty.proc.pid, signal.SIGINT)
    assert await tty.wait() == 0
    assert "connection closed: code 1000" in tty.err_lines
    assert tty.modes() == before


async def test_terminal_without_marks(cli: Any, ws_url: str, home: dict[str, str]) -> None:
    tty = await cli("--no-marks", ws_url, env=home, tty=True)
    # Without marks, the plain client's status lines are on stdout, as when piped.
    await tty.expect(f"connected to {ws_url} (Ctrl-D to close)\n")
    await tty.type("plain" + ENTER)
    await tty.expect("plain\nplain\n")  # typed, then the echo: no prompt, no marks
    await tty.type(CTRL_D)
    assert await tty.wait() == 0
    assert "< " not in tty.screen() and "> " not in tty.screen()


async def test_terminal_sio_acks_both_ways(
    cli: Any, sio_url: tuple[str, list[Any]], home: dict[str, str]
) -> None:
    url, answers = sio_url
    tty = await cli("--sio", url, env=home, tty=True)
    await tty.notice("connected to /")
    await tty.expect("> ")
    await tty.type("?sum [1, 2, 3]" + ENTER)
    await tty.expect("< ack sum [6]\n")
    await tty.type("askme" + ENTER)
    await tty.expect('< ?ask ["ready?"]\n')
    await tty.expect("> ack ask []\n")  # answered at once, with no argument
    await tty.type(UP + UP + ENTER)  # history: the ?sum line again
    await tty.expect("< ack sum [6]\n")
    await tty.type(CTRL_D)
    assert await tty.wait() == 0
    assert answers == [None]
    history = Path(home["HOME"]) / ".tether_history"
    assert history.read_text().splitlines() == ["?sum [1, 2, 3]", "askme", "?sum [1, 2, 3]"]


# --------------------------------------------------------------------------- the line format


def test_names_that_start_ack_lines_are_quoted() -> None:
    # A line starting with the bare word "ack" is an acknowledgement; a bare "?" asks
    # for one: events with such names are printed quoted, and read back the same.
    assert format_event("ack", [1]) == '"ack" [1]'
    assert format_event("?sum", []) == '"?sum" []'
    assert format_event("acks", []) == "acks []"
    assert format_event("a?", []) == "a? []"
    for name in ("ack", "?sum", "? x"):
        assert parse_line(format_event(name, [1, None])) == (name, [1, None])
