"""``tether connect --sio URL``: the terminal Socket.IO client, end to end.

The command runs as a real ``python -m tether.cli`` process against a tether Hub served
in-process on 127.0.0.1; the test writes event lines to its stdin and reads its stdout
(events, acknowledgements) and stderr (notices, errors) line by line, each read bounded.
Processes are stopped by their PID. The line format itself (``NAME [JSON]``) is also
checked without a process, through ``parse_line`` and ``format_event``. The terminal mode
(a pseudo-terminal, marks, history) is tested in ``test_cli_connect.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tether.cli_connect import format_event, parse_line
from tether.exceptions import InvalidInput
from tether.realtime import ConnectionRefused, Hub, Socket

HOST = "127.0.0.1"
WAIT = 15.0  # the bound on any single wait; never reached when things work
SLOW = 1.0  # how long the "slow" event takes to be acknowledged


# --------------------------------------------------------------------------- the line format


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('chat ["hi", 2]', ("chat", ["hi", 2])),
        ('chat "hi"', ("chat", ["hi"])),
        ('chat {"a": [1]}', ("chat", [{"a": [1]}])),
        ("chat 3", ("chat", [3])),
        ("chat null", ("chat", [None])),
        ("chat [[1, 2]]", ("chat", [[1, 2]])),
        ("chat []", ("chat", [])),
        ("chat", ("chat", [])),
        ("  chat \t [1]  ", ("chat", [1])),
        ("chat\t[1]", ("chat", [1])),
        ('"chat message" "hi"', ("chat message", ["hi"])),
        ('"quoted"', ("quoted", [])),
        ('bin {"$binary": "AAH/"}', ("bin", [b"\x00\x01\xff"])),
        ('bin [{"k": {"$binary": ""}}]', ("bin", [{"k": b""}])),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_line(line: str, expected: Any) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "chat [1,",
        "chat {bad}",
        "chat hi",
        '"unterminated [1]',
        '"a"[1]',
        "1 2",
        'b {"$binary": "*"}',
    ],
)
def test_parse_line_errors(line: str) -> None:
    if line == "1 2":
        assert parse_line(line) == ("1", [2])  # a plain name may be digits
        return
    with pytest.raises(InvalidInput):
        parse_line(line)


def test_format_event_round_trips() -> None:
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("chat", ("hi", 2, None, {"a": [True]})),
        ("tick", ()),
        ("chat message", ("é",)),
        ('"odd', (1,)),
        ("bin", (b"\x00\xff", {"deep": b"x"})),
    ]
    for name, args in cases:
        line = format_event(name, args)
        assert parse_line(line) == (name, list(args)), line
    assert format_event("chat", ("hi",)) == 'chat ["hi"]'
    assert format_event("chat message", ()) == '"chat message" []'
    assert format_event("bin", (b"\x00\x01",)) == 'bin [{"$binary": "AAE="}]'


# --------------------------------------------------------------------------- the process


class Proc:
    """A running ``tether connect --sio``: bounded line reads on both pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: asyncio.Queue[str | None] = asyncio.Queue()
        self.err: asyncio.Queue[str | None] = asyncio.Queue()
        self.err_lines: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [
            asyncio.ensure_future(self._pump(proc.stdout, self.out, [])),
            asyncio.ensure_future(self._pump(proc.stderr, self.err, self.err_lines)),
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
        """The next stdout line (None at end of output)."""
        return await asyncio.wait_for(self.out.get(), WAIT)

    async def notice(self, contains: str) -> str:
        """Skip stderr lines until one contains ``contains``; return it."""
        try:
            async with asyncio.timeout(WAIT):
                while (line := await self.err.get()) is not None:
                    if contains in line:
                        return line
        except TimeoutError:
            pass
        raise AssertionError(f"no {contains!r} on stderr:\n" + "\n".join(self.err_lines))

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

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), WAIT)
        for pump in self._pumps:
            pump.cancel()


def make_hub() -> tuple[Hub, dict[str, list[Any]]]:
    """A hub whose "echo" event sends the arguments back, "sum" acknowledges with the sum,
    "slow" with "done" after a second, "askme" emits "ask" with an acknowledgement and
    sends what came back as "got"; it records the rest."""
    hub = Hub()
    seen: dict[str, list[Any]] = {"events": [], "auth": []}
    for name in ("/", "/chat"):
        nsp = hub.of(name)

        async def check(socket: Socket, auth: dict[str, Any]) -> None:
            seen["auth"].append((socket.namespace.name, auth))
            if auth.get("token") == "bad":
                raise ConnectionRefused("not authorized", {"reason": "bad token"})

        nsp.use(check)

        @nsp.on("echo")
        async def echo(socket: Socket, *args: Any) -> None:
            await socket.emit("echo", *args)

        @nsp.on("whoami")
        async def whoami(socket: Socket) -> None:
            await socket.emit(
                "you",
                {
                    "nsp": socket.namespace.name,
                    "auth": socket.handshake.auth,
                    "transport": socket.transport,
                },
            )

        @nsp.on("sum")
        async def add(socket: Socket, *numbers: int) -> int:
            return sum(numbers)

        @nsp.on("slow")
        async def slow(socket: Socket) -> str:
            await asyncio.sleep(SLOW)
            return "done"

        @nsp.on("askme")
        async def askme(socket: Socket) -> None:
            await socket.emit("got", await socket.emit_with_ack("ask", "ready?", timeout=WAIT))

        @nsp.on("bye")
        async def bye(socket: Socket) -> None:
            await socket.disconnect()

        @nsp.on("*")
        async def anything(socket: Socket, event: str, *args: Any) -> None:
            seen["events"].append((socket.namespace.name, event, list(args)))

    return hub, seen


@pytest.fixture
async def hub() -> AsyncIterator[tuple[Hub, dict[str, list[Any]], str]]:
    hub, seen = make_hub()
    server = await hub.serve(HOST, 0)
    yield hub, seen, f"http://{HOST}:{server.port}"
    await hub.close()
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), WAIT)


@pytest.fixture
async def cli() -> AsyncIterator[Callable[..., Awaitable[Proc]]]:
    started: list[Proc] = []

    async def start(*args: str) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether.cli",
            "connect",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        handle = Proc(proc)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        await handle.kill()


async def test_events_both_ways(hub: Any, cli: Any) -> None:
    _, seen, url = hub
    proc = await cli("--sio", url)
    assert "connected to / " in await proc.notice("connected")
    await proc.send('echo ["hi", 2]')
    assert await proc.line() == 'echo ["hi", 2]'
    await proc.send('echo "hi"')
    assert await proc.line() == 'echo ["hi"]'
    await proc.send('echo {"a": [1, null]}')
    assert await proc.line() == 'echo [{"a": [1, null]}]'
    await proc.send("echo")
    assert await proc.line() == "echo []"
    await proc.send("", "echo [[1, 2]]")  # a blank line is skipped
    assert await proc.line() == "echo [[1, 2]]"
    # binary both ways
    await proc.send('echo {"$binary": "AAH/"}')
    assert await proc.line() == 'echo [{"$binary": "AAH/"}]'
    # names with spaces are JSON strings
    await proc.send('"chat message" "hello"', "whoami")
    assert await proc.line() == 'you [{"nsp": "/", "auth": {}, "transport": "websocket"}]'
    assert seen["events"] == [("/", "chat message", ["hello"])]
    await proc.close_stdin()
    assert await proc.wait() == 0
    assert "disconnected: io client disconnect" in proc.err_lines


async def test_invalid_lines_are_reported_and_skipped(hub: Any, cli: Any) -> None:
    _, seen, url = hub
    proc = await cli("--sio", url)
    await proc.notice("connected")
    await proc.send("echo [1,")
    error = await proc.notice("invalid line")
    assert "'echo [1,'" in error and "not JSON" in error and "NAME [JSON]" in error
    await proc.send("echo 1")
    assert await proc.line() == "echo [1]"
    await proc.send("echo hello")  # a bare word is not JSON
    assert "not JSON" in await proc.notice("invalid line")
    await proc.send("disconnect []")  # a reserved name: refused by the client, not sent
    assert "reserved" in await proc.notice("cannot send 'disconnect'")
    await proc.send('echo "still here"')
    assert await proc.line() == 'echo ["still here"]'
    await proc.close_stdin()
    assert await proc.wait() == 0
    assert seen["events"] == []


async def test_namespace_auth_and_transports(hub: Any, cli: Any) -> None:
    _, seen, url = hub
    proc = await cli(
        "--sio", url, "--namespace", "/chat", "--auth", '{"token": "t1"}', "--transports", "polling"
    )
    assert "transport polling" in await proc.notice("connected to /chat")
    await proc.send("whoami")
    assert await proc.line() == (
        'you [{"nsp": "/chat", "auth": {"token": "t1"}, "transport": "polling"}]'
    )
    await proc.send("echo 5")
    assert await proc.line() == "echo [5]"
    await proc.close_stdin()
    assert await proc.wait() == 0
    assert seen["auth"] == [("/chat", {"token": "t1"})]


async def test_refused_auth_exits_with_an_error(hub: Any, cli: Any) -> None:
    _, seen, url = hub
    proc = await cli("--sio", url, "--auth", '{"token": "bad"}')
    line = await proc.notice("cannot connect")
    assert "not authorized" in line
    assert await proc.wait() == 1
    assert await proc.line() is None  # nothing on stdout
    assert len(seen["auth"]) == 1  # no retries


async def test_server_disconnect_ends_the_command(hub: Any, cli: Any) -> None:
    _, _, url = hub
    proc = await cli("--sio", url)
    await proc.notice("connected")
    await proc.send("bye")
    await proc.notice("disconnected: io server disconnect")
    assert await proc.wait() == 0


async def test_reconnects_after_the_server_closes_the_session(hub: Any, cli: Any) -> None:
    h, _, url = hub
    proc = await cli("--sio", url, "--transports", "websocket")
    first = await proc.notice("connected")
    (socket,) = h.of("/").sockets.values()
    socket.session.close("forced close")
    await proc.notice("disconnected: transport close")
    await proc.notice("reconnected")
    second = await proc.notice("connected")
    assert first != second  # a new sid
    await proc.send("echo 1")
    assert await proc.line() == "echo [1]"
    await proc.close_stdin()
    assert await proc.wait() == 0


async def test_unreachable_server(cli: Any, unused_tcp_port: int) -> None:
    proc = await cli("--sio", f"http://{HOST}:{unused_tcp_port}")
    assert "cannot connect" in await proc.notice("cannot connect")
    assert await proc.wait() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sio", "--auth", "[1]", "http://x"], "must be a JSON object"),
        (["--sio", "--auth", "{", "http://x"], "not JSON"),
        (["--sio", "--transports", "carrier-pigeon", "http://x"], "polling"),
        (["--sio", "--namespace", "chat", "http://x"], "invalid namespace"),
        (["--namespace", "/chat", "ws://x"], "need --sio"),
        (["--ack", "ws://x"], "need --sio"),
        (["--reply", "1", "ws://x"], "need --sio"),
        (["--sio", "--ack-timeout", "0", "http://x"], "must be a finite number > 0"),
        (["--sio", "--ack-timeout", "soon", "http://x"], "not a number of seconds"),
        (["--sio", "--reply", "{", "http://x"], "not JSON"),
    ],
)
async def test_usage_errors(cli: Any, args: list[str], message: str) -> None:
    proc = await cli(*args)
    assert await proc.wait() == 2
    assert message in "\n".join(proc.err_lines)


# --------------------------------------------------------------------------- acknowledgements


async def test_a_question_mark_asks_for_an_ack(hub: Any, cli: Any) -> None:
    _, seen, url = hub
    proc = await cli("--sio", url)
    await proc.notice("connected")
    await proc.send("?sum [1, 2]")
    assert await proc.line() == "ack sum [3]"
    await proc.send('? "sum" 5')  # spaces after "?", a quoted name
    assert await proc.line() == "ack sum [5]"
    await proc.send('?echo "x"')  # the event first, then the (empty) acknowledgement
    assert await proc.line() == 'echo ["x"]'
    assert await proc.line() == "ack echo []"
    await proc.send("?")
    assert "name is missing" in await proc.notice("invalid line '?'")
    await proc.send('"?odd" 1', "sum 1")  # a quoted "?" is part of the name; no ack asked
    await proc.send("?sum 7")
    assert await proc.line() == "ack sum [7]"
    await proc.close_stdin()
    assert await proc.wait() == 0
    assert seen["events"] == [("/", "?odd", [1])]
    assert not any(line.startswith("no ack") for line in proc.err_lines)


async def test_ack_flag_timeout_and_late_ack(hub: Any, cli: Any) -> None:
    _, _, url = hub
    proc = await cli("--sio", "--ack", "--ack-timeout", "0.3", url)
    await proc.notice("connected")
    await proc.send("sum [2, 2]")
    assert await proc.line() == "ack sum [4]"
    await proc.send("slow")
    assert await proc.notice("no ack for slow") == "no ack for slow within 0.3s"
    assert await proc.notice("late ack") == 'late ack slow ["done"]'
    await proc.send("sum 1")
    assert await proc.line() == "ack sum [1]"
    await proc.close_stdin()
    assert await proc.wait() == 0
    assert await proc.line() is None  # the late ack was a notice, not an ack line


async def test_end_of_input_waits_for_the_acks(hub: Any, cli: Any) -> None:
    _, _, url = hub
    proc = await cli("--sio", url)
    await proc.send("?slow", "?sum [1, 1]")
    await proc.close_stdin()  # at once: the acks still come
    assert sorted([await proc.line(), await proc.line()]) == ['ack slow ["done"]', "ack sum [2]"]
    assert await proc.wait() == 0
    assert await proc.line() is None


@pytest.mark.parametrize(
    ("reply", "got", "notice"),
    [
        ([], "got [null]", "acked ask with []"),
        (["--reply", '"yes"'], 'got ["yes"]', 'acked ask with ["yes"]'),
        (["--reply", '["yes", 2]'], 'got [["yes", 2]]', 'acked ask with ["yes", 2]'),
    ],
)
async def test_the_servers_ack_requests_are_answered(
    hub: Any, cli: Any, reply: list[str], got: str, notice: str
) -> None:
    _, _, url = hub
    proc = await cli("--sio", *reply, url)
    await proc.notice("connected")
    await proc.send("askme")
    assert await proc.line() == '?ask ["ready?"]'  # "?": the server asked for an ack
    assert await proc.line() == got
    assert await proc.notice("acked") == notice
    await proc.close_stdin()
    assert await proc.wait() == 0
