"""``tether connect``: the terminal clients, plain WebSocket and (``--sio``) Socket.IO.

::

    tether connect URL [--marks | --no-marks]
    tether connect --sio URL [--namespace NS] [--auth JSON] [--transports LIST]
                   [--ack] [--ack-timeout S] [--reply JSON] [--marks | --no-marks]

Marks. With marks, every line on stdout says which way it went, as in ``wscat``: ``< ``
before what arrived, ``> `` before what was sent, and notices (connected, closed,
reconnecting, errors) go to stderr, so stdout holds only marked lines. Marks are on when
stdout is a terminal and off when it is piped or redirected; ``--marks`` and
``--no-marks`` decide instead. Without marks, stdout holds what arrived, one message per
line and unmarked, and nothing that was sent (the plain client also writes its two status
lines there, ``connected to URL (Ctrl-D to close)`` first and
``connection closed: code N`` last, as it always has: a script can wait for the first).

Input. When stdin and stdout are both terminals, lines are read with :mod:`readline`
behind the prompt ``> `` (``""`` without marks): line editing, and a history that the up
arrow walks, kept across runs in ``$XDG_STATE_HOME/tether/history`` (or
``~/.tether_history`` when ``XDG_STATE_HOME`` is unset), at most 1,000 lines, private to
the user (mode 600). A line typed at the prompt stays on the screen after it, so it is not
echoed again; what arrives while a line is being typed is printed above it and the prompt
is drawn again with the text typed so far. Otherwise (stdin piped) lines are read as
they come; with marks each is echoed as ``> LINE`` as it is sent (before any answer can
be printed; for ``--sio``, in the form :func:`format_event` gives it, and a line the
client refuses to send is followed by a notice saying why). Either way, end of
input (Ctrl-D) closes the connection, and so do Ctrl-C and SIGTERM; the terminal's modes
are put back as they were.

Plain WebSocket: each input line is sent as a text message; each message that arrives is
printed (a binary one as a short hex summary, ``<binary, 3 bytes: 00 01 ff>``)::

    > hello
    < hello
    < <binary, 3 bytes: 00 01 ff>

Socket.IO (``--sio``), one event per line, both ways::

    [?]NAME [JSON]

- each input line is emitted as an event. The rest of the line after the name is one JSON
  value: a JSON array is the argument list (``chat ["hi", 2]`` sends two arguments), any
  other value is the only argument (``chat "hi"``, ``chat {"a": 1}``), and a name alone
  sends no argument. A name with spaces, or one starting with ``"`` or ``?``, is written as
  a JSON string: ``"chat message" "hi"``. Blank lines are skipped.
- a ``?`` before the name asks for an acknowledgement (``?sum [1, 2]``); ``--ack`` asks
  for one on every emit. The acknowledgement is printed as ``ack NAME ARGS``
  (``< ack sum [3]``, the arguments as a JSON array); when none comes within
  ``--ack-timeout`` seconds (default 5), stderr says ``no ack for sum within 5s``. One that
  comes later is reported on stderr as ``late ack sum [3]``. At end of input, the
  acknowledgements still awaited are waited for (each at most ``--ack-timeout``) before
  disconnecting.
- every event the server sends is printed as its name, a space and its arguments as a JSON
  array: ``chat ["hi", 2]``; ``ping []`` for none. An event for which the server asks an
  acknowledgement is printed with a ``?`` before its name (``< ?ask ["ready?"]``) and
  answered at once with the arguments of ``--reply`` (a JSON value read like the input
  lines' arguments; default: none); the answer is printed like a sent line,
  ``> ack ask []`` with marks, and as the notice ``acked ask with []`` on stderr without.
  An event named ``ack``, or whose name starts with ``?``, is printed with its name quoted
  (``"ack" [1]``), so that a line starting with the word ``ack`` is always an
  acknowledgement and a bare ``?`` always a request for one.
- binary arguments are shown as ``{"$binary": "<base64>"}``, and that object is sent as
  binary.
- a line that cannot be parsed (bad JSON, a reserved event name) is reported on stderr and
  skipped; the connection goes on.
- connect, disconnect and reconnect notices go to stderr (with or without marks); the
  client reconnects by itself.

The exit status is 1 when the first connection failed, the plain connection closed with a
code other than 1000 or 1001, the server refused the namespace or reconnection gave up;
else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import run
from .asyncio import connect
from .cli_serve import stop_event as _stop_event
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidInput, InvalidURI, OpenTimeout

if TYPE_CHECKING:
    from .realtime.client_socket import NamespaceSocket
    from .realtime.packets import Packet

__all__ = [
    "HISTORY_LENGTH",
    "Console",
    "add_parser",
    "format_event",
    "history_path",
    "main",
    "parse_line",
]

#: The most lines the input history keeps (in memory and in its file).
HISTORY_LENGTH = 1000
#: How many input lines may wait to be sent: a paste beyond waits in the reading thread.
_INPUT_QUEUE = 64
_RECEIVED, _SENT = "< ", "> "
# Erase the terminal line the cursor is on and go to its start (ECMA-48 EL, CR).
_CLEAR_LINE = "\r\x1b[K"
# What readline writes when it leaves the terminal (bracketed paste off): written on exit
# when readline was interrupted in the middle of a line, and could not write it itself.
_PASTE_OFF = "\x1b[?2004l"
#: How long a line to print may wait for readline to finish drawing its prompt (seconds).
_DRAW_WAIT = 0.5


# ------------------------------------------------------------------ output


class Console:
    """Where ``tether connect`` writes, and how it reads lines.

    Marked lines go to stdout, notices to stderr. While the reading thread waits at the
    prompt, a line printed from the event loop first erases the prompt line, then draws
    the prompt again with what was typed so far (``readline.get_line_buffer``): the cursor
    ends at the end of that text, as in ``wscat``.

    Args:
        marks: prefix lines with ``< `` / ``> `` (None: when stdout is a terminal).
        stdin: the input stream (default ``sys.stdin``).
        stdout: the output stream (default ``sys.stdout``).
        stderr: the notice stream (default ``sys.stderr``).
    """

    def __init__(
        self,
        marks: bool | None = None,
        *,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        out_tty = _isatty(self.stdout)
        #: Whether lines carry ``< `` / ``> ``.
        self.marks = out_tty if marks is None else marks
        #: Whether input is read with readline at a prompt (stdin and stdout terminals).
        self.interactive = out_tty and _isatty(self.stdin) and _readline() is not None
        #: The prompt drawn before the line being typed.
        self.prompt = _SENT if self.marks else ""
        self._ansi = os.environ.get("TERM", "") != "dumb"
        self._termios: Any = None
        if self.interactive:
            with contextlib.suppress(ImportError):
                import termios

                self._termios = termios
        self._err_tty = _isatty(self.stderr)
        # Guards the prompt's state, shared by the loop's thread (which prints) and the
        # reading thread (in readline, whose hooks say where it is).
        self._lock = threading.Condition()
        self._drawing = False  # readline is drawing the prompt: wait, then redraw
        self._prompting = False  # the prompt is on the screen, a line may be typed
        self._closed = False
        self._reader: threading.Thread | None = None
        self._reader_done = False

    # The three kinds of line.

    def received(self, text: str) -> None:
        """Print what arrived (``< text`` with marks)."""
        self._write(self.stdout, _RECEIVED + text if self.marks else text)

    def sent(self, text: str, *, typed: bool = False) -> bool:
        """Print what was sent (``> text``), with marks only, and not when the line was
        ``typed`` at the prompt (the prompt already shows it).

        Returns:
            Whether a line was printed.
        """
        if not self.marks or (typed and self.interactive):
            return False
        self._write(self.stdout, _SENT + text)
        return True

    def notice(self, text: str) -> None:
        """Print a notice on stderr."""
        self._write(self.stderr, text)

    def status(self, text: str) -> None:
        """Print a status line of the plain client: on stdout without marks (where it has
        always been), a notice with them."""
        self._write(self.stderr if self.marks else self.stdout, text)

    def _write(self, stream: IO[str], text: str) -> None:
        with self._lock:
            if self._drawing:  # bounded: a hook that never comes must not stop the output
                self._lock.wait_for(lambda: not self._drawing, timeout=_DRAW_WAIT)
            redraw = (
                self._prompting
                and self._ansi
                and not self._closed
                and (stream is self.stdout or self._err_tty)
                and self._line_being_typed()
            )
            if redraw:
                self.stdout.write(_CLEAR_LINE)
                self.stdout.flush()
            stream.write(text + "\n")
            stream.flush()
            if redraw:
                rl = _readline()
                typed = rl.get_line_buffer() if rl is not None else ""
                self.stdout.write(self.prompt + typed)
                self.stdout.flush()

    # Reading.

    def start_reading(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]
    ) -> None:
        """Feed input lines into ``queue`` from a daemon thread (None at end of input).

        A daemon thread, not ``to_thread``: a blocked read must not keep the process alive
        after the connection is gone. Interactive, lines come from ``input()`` (readline)
        and go into the history.
        """

        def put(line: str | None) -> None:
            # Blocks this thread while the queue is full: pasted input waits its turn.
            asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()

        def pipe() -> None:
            for line in self.stdin:
                put(line.rstrip("\r\n"))

        def prompt() -> None:
            history = _History(history_path(), self.notice)
            rl = _readline()
            assert rl is not None
            rl.set_startup_hook(self._prompt_coming)
            rl.set_pre_input_hook(self._prompt_shown)
            while True:
                with self._lock:
                    if self._closed:
                        return  # the connection is over: leave the terminal alone
                try:
                    line = input(self.prompt)
                except EOFError:
                    self._prompt_gone()
                    # Ctrl-D: the prompt's line is left empty; erase it (or end it).
                    with self._lock:
                        self.stdout.write(_CLEAR_LINE if self._ansi else "\n")
                        self.stdout.flush()
                    return
                self._prompt_gone()
                history.add(line)
                put(line)

        def pump() -> None:
            try:
                (prompt if self.interactive else pipe)()
                put(None)
            except (RuntimeError, concurrent.futures.CancelledError):
                pass  # the loop is gone: the connection is over
            finally:
                with self._lock:
                    self._prompting = False
                    self._reader_done = True
                    self._lock.notify_all()  # for settle(): this thread is done

        self._reader = threading.Thread(target=pump, name="tether-stdin", daemon=True)
        self._reader.start()

    def _prompt_coming(self) -> None:
        # readline's startup hook: it is about to draw the prompt.
        with self._lock:
            self._drawing = True

    def _prompt_shown(self) -> None:
        # readline's pre-input hook: the prompt is on the screen, the line buffer is new.
        with self._lock:
            self._drawing = False
            self._prompting = True
            self._lock.notify_all()

    def _line_being_typed(self) -> bool:
        """Whether readline still reads a line: the terminal is raw while it does.

        Once Enter is pressed, readline moves to the next line and gives the terminal back
        (canonical mode) before the reading thread can say it has the line: in between,
        nothing must be redrawn, or the line just entered would be drawn again.
        """
        if self._termios is None:
            return True
        try:
            lflag = self._termios.tcgetattr(self.stdin.fileno())[3]
        except (OSError, ValueError, self._termios.error):
            return True
        return not lflag & self._termios.ICANON

    def _prompt_gone(self) -> None:
        with self._lock:
            self._prompting = False

    def close(self) -> None:
        """Stop drawing the prompt; erase it if it is on the screen (the connection is over
        while the reading thread still waits for a line)."""
        with self._lock:
            if self._prompting and self._ansi and not self._closed:
                self.stdout.write(_CLEAR_LINE + _PASTE_OFF)
                self.stdout.flush()
            self._closed = True

    def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the reading thread is blocked in readline
        with its prompt drawn, or gone: readline switches the terminal to raw input as
        it starts reading a line, so modes put back before that would not stay."""
        reader = self._reader
        if reader is None or not self.interactive:
            return
        with self._lock:
            self._lock.wait_for(lambda: self._prompting or self._reader_done, timeout)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _readline() -> Any:
    """The readline module, or None where there is none (Windows)."""
    try:
        import readline
    except ImportError:
        return None
    return readline


@contextlib.contextmanager
def _terminal_kept(console: Console) -> Iterator[None]:
    """Put the terminal's modes back on the way out.

    readline switches the terminal to raw input while a line is typed and back when it
    is entered; the connection may end (the server closes, Ctrl-C) in the middle of a
    line, with the reading thread still in readline.
    """
    saved: list[Any] | None = None
    fd = -1
    if console.interactive:
        import termios

        with contextlib.suppress(OSError, ValueError, termios.error):
            fd = console.stdin.fileno()
            saved = termios.tcgetattr(fd)
    try:
        yield
    finally:
        console.close()
        console.settle(1.0)
        if saved is not None:
            import termios

            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# ------------------------------------------------------------------ history


def history_path() -> Path:
    """Where the input history is kept: ``$XDG_STATE_HOME/tether/history``, or
    ``~/.tether_history`` when ``XDG_STATE_HOME`` is unset or empty."""
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return Path(state) / "tether" / "history"
    return Path.home() / ".tether_history"


class _History:
    """readline's history, loaded from ``path`` and appended to it line by line.

    Appending at once, not writing at exit: a killed process keeps its lines, and two
    at once do not overwrite each other's. readline truncates the file to
    :data:`HISTORY_LENGTH` lines after each append.
    """

    def __init__(self, path: Path, notice: Callable[[str], None]) -> None:
        self._rl = _readline()
        self._notice = notice
        self.path: Path | None = path
        self._rl.set_auto_history(False)
        self._rl.set_history_length(HISTORY_LENGTH)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # The history may hold secrets (tokens in events): the user's only.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            self._rl.read_history_file(str(path))
        except OSError as exc:
            self._fail(exc)

    def add(self, line: str) -> None:
        """Remember a line (not a blank one, nor the one just before again)."""
        if not line.strip():
            return
        count = self._rl.get_current_history_length()
        if count and self._rl.get_history_item(count) == line:
            return
        self._rl.add_history(line)
        if self.path is not None:
            try:
                if hasattr(self._rl, "append_history_file"):
                    self._rl.append_history_file(1, str(self.path))
                else:  # a readline without it (some libedit builds): the whole history
                    self._rl.write_history_file(str(self.path))
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self._notice(f"history not saved: {self.path}: {exc.strerror or exc}")
        self.path = None


# ------------------------------------------------------------------ plain WebSocket


def _describe(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    head = message[:32].hex(" ")
    more = " …" if len(message) > 32 else ""
    return f"<binary, {len(message)} bytes: {head}{more}>"


async def connect_ws(url: str, console: Console) -> int:
    """Run ``tether connect URL``; returns the exit status."""
    try:
        ws = await connect(url)
    except (InvalidURI, InvalidHandshake, OpenTimeout, OSError) as exc:
        console.notice(f"cannot connect to {url}: {exc}")
        return 1
    console.status(f"connected to {url} (Ctrl-D to close)")
    stop = _stop_event()
    lines: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_INPUT_QUEUE)

    async def receive() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                console.received(_describe(message))

    async def send() -> None:
        with contextlib.suppress(ConnectionClosed):
            while (line := await lines.get()) is not None:
                # Printed before it goes, as the prompt shows a typed line: an answer
                # cannot come first.
                console.sent(line, typed=True)
                await ws.send(line)
            # End of input: close; receive() still prints what arrives before the close.
            await ws.close(1000)

    with _terminal_kept(console):
        console.start_reading(asyncio.get_running_loop(), lines)
        receiver = asyncio.ensure_future(receive())
        sender = asyncio.ensure_future(send())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            # Done when the connection is closed (by either side) or on SIGINT/SIGTERM.
            await asyncio.wait([receiver, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, sender, stopper):
                task.cancel()
            await asyncio.gather(receiver, sender, stopper, return_exceptions=True)
            with contextlib.suppress(ConnectionClosed):
                await ws.close(1000)
    code = ws.close_code
    reason = ws.close_reason or ""
    console.status(f"connection closed: code {code}" + (f" ({reason})" if reason else ""))
    return 0 if code in (1000, 1001, None) else 1


# ------------------------------------------------------------------ Socket.IO lines

_BINARY_KEY = "$binary"
_PLAIN_NAME = re.compile(r'[^\s"?]\S*')
_ACK_WORD = "ack"
_ASK = "?"


def _binary_out(value: object) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BINARY_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _binary_in(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get(_BINARY_KEY), str):
        try:
            return base64.b64decode(obj[_BINARY_KEY], validate=True)
        except binascii.Error as exc:
            raise InvalidInput(f"{_BINARY_KEY} is not base64: {exc}") from None
    return obj


def _format_name(event: object) -> str:
    name = event if isinstance(event, str) else str(event)
    if not _PLAIN_NAME.fullmatch(name) or name == _ACK_WORD:
        name = json.dumps(name, ensure_ascii=False)
    return name


def _format_args(args: Sequence[Any]) -> str:
    return json.dumps(list(args), ensure_ascii=False, default=_binary_out)


def format_event(event: object, args: Sequence[Any]) -> str:
    """One output line: the event name, a space, and the arguments as a JSON array;
    binary values as ``{"$binary": "<base64>"}``.

    The name is written as a JSON string when it has spaces, starts with ``"`` or ``?``,
    or is ``ack`` (those start the lines of acknowledgements), so that
    :func:`parse_line` reads the line back as the same event.
    """
    return f"{_format_name(event)} {_format_args(args)}"


def parse_line(line: str) -> tuple[str, list[Any]] | None:
    """Parse one input line ``NAME [JSON]`` (see the module docstring).

    The ``?`` that asks for an acknowledgement is not this function's: it reads
    ``?sum`` as the name ``?sum``.

    Returns:
        ``(name, args)``, or None for a blank line.

    Raises:
        InvalidInput: the name or the JSON value is malformed.
    """
    text = line.strip()
    if not text:
        return None
    if text.startswith('"'):
        try:
            name, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the quoted event name is not a JSON string ({exc})") from None
        if not isinstance(name, str):
            raise InvalidInput("the quoted event name is not a JSON string")
        rest = text[end:]
        if rest and not rest[0].isspace():
            raise InvalidInput("expected a space after the quoted event name")
    else:
        name, *more = text.split(None, 1)
        rest = more[0] if more else ""
    if not name:
        raise InvalidInput("the event name is empty")
    return name, _parse_args(rest)


def _parse_args(text: str) -> list[Any]:
    """The argument list a JSON value stands for (see the module docstring).

    Raises:
        InvalidInput: not JSON.
    """
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text, object_hook=_binary_in)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the arguments are not JSON ({exc})") from None
    return value if isinstance(value, list) else [value]


def _parse_emit(line: str, ack_all: bool) -> tuple[str, list[Any], bool] | None:
    """An input line of ``--sio``: ``(name, args, ask for an ack)``, None for a blank one.

    Raises:
        InvalidInput: a malformed line.
    """
    text = line.strip()
    ask = text.startswith(_ASK)
    if ask:
        text = text[len(_ASK) :]
        if not text.strip():
            raise InvalidInput(f"an event name is missing after {_ASK}")
    parsed = parse_line(text)
    if parsed is None:
        return None
    return parsed[0], parsed[1], ask or ack_all


def _error_text(data: Any) -> str:
    if isinstance(data, dict) and "message" in data:
        extra = f" {json.dumps(data['data'])}" if data.get("data") is not None else ""
        return f"{data['message']}{extra}"
    return str(data)


# ------------------------------------------------------------------ Socket.IO client


async def connect_sio(
    url: str,
    console: Console,
    *,
    namespace: str = "/",
    auth: dict[str, Any] | None = None,
    transports: list[str] | None = None,
    ack_all: bool = False,
    ack_timeout: float = 5.0,
    reply: Sequence[Any] = (),
) -> int:
    """Run ``tether connect --sio URL``; returns the exit status."""
    from .realtime.client import BufferFull, Client, ConnectError

    class _Client(Client):
        #: While an event's handler runs: whether the server asked for an acknowledgement.
        asked = False

        async def _on_event(self, sock: NamespaceSocket, packet: Packet) -> None:
            # The client answers with the handler's return value when the packet has an
            # ack id; the catch-all handler is not told whether it has one. It is sync,
            # so it runs before the first await below.
            self.asked = packet.id is not None
            try:
                await super()._on_event(sock, packet)
            finally:
                self.asked = False

    client = _Client()
    loop = asyncio.get_running_loop()
    failed = False
    awaited: set[asyncio.Future[None]] = set()
    answer = tuple(reply)

    def on_event(event: object, *args: Any) -> tuple[Any, ...] | None:
        if not client.asked:
            console.received(format_event(event, args))
            return None
        console.received(_ASK + format_event(event, args))
        line = f"{_ACK_WORD} {format_event(event, answer)}"
        if not console.sent(line):
            console.notice(f"acked {_format_name(event)} with {_format_args(answer)}")
        return answer  # a tuple: the argument list of the acknowledgement

    def on_connect() -> None:
        sock = client.socket(namespace)
        console.notice(f"connected to {namespace} (sid {sock.sid}, transport {client.transport})")

    def on_connect_error(data: Any) -> None:
        nonlocal failed
        failed = True
        console.notice(f"connect error on {namespace}: {_error_text(data)}")

    def on_reconnect_failed() -> None:
        nonlocal failed
        failed = True
        console.notice("reconnection gave up")

    client.on("*", on_event, namespace=namespace)
    client.on("connect", on_connect, namespace=namespace)
    client.on("connect_error", on_connect_error, namespace=namespace)
    client.on(
        "disconnect", lambda reason: console.notice(f"disconnected: {reason}"), namespace=namespace
    )
    client.on("reconnect_attempt", lambda n: console.notice(f"reconnecting (attempt {n})"))
    client.on("reconnect", lambda n: console.notice(f"reconnected after {n} attempt(s)"))
    client.on("reconnect_failed", on_reconnect_failed)
    try:
        await client.connect(url, namespaces=[namespace], auth=auth, transports=transports)
    except ConnectError as exc:
        console.notice(f"cannot connect to {url}: {exc}")
        return 1
    stop = _stop_event()
    lines: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_INPUT_QUEUE)

    async def emit_asking(name: str, args: list[Any]) -> None:
        """Emit with an acknowledgement; print it, or a timeout notice."""
        done: asyncio.Future[None] = loop.create_future()

        def on_ack(*ack: Any) -> None:
            if done.done():
                console.notice(f"late {_ACK_WORD} {format_event(name, ack)}")
                return
            timer.cancel()
            done.set_result(None)
            console.received(f"{_ACK_WORD} {format_event(name, ack)}")

        def timed_out() -> None:
            # The client keeps awaiting it (bounded by its max_pending_acks) until the
            # connection drops: a late one is still reported.
            if not done.done():
                done.set_result(None)
                console.notice(f"no ack for {_format_name(name)} within {ack_timeout:g}s")

        timer = loop.call_later(ack_timeout, timed_out)
        try:
            await client.emit(name, *args, namespace=namespace, callback=on_ack)
        except BaseException:
            timer.cancel()
            raise
        awaited.add(done)
        done.add_done_callback(awaited.discard)

    async def send() -> None:
        while (line := await lines.get()) is not None:
            try:
                parsed = _parse_emit(line, ack_all)
            except InvalidInput as exc:
                console.notice(f"invalid line {line!r}: {exc}; expected [?]NAME [JSON]")
                continue
            if parsed is None:
                continue
            name, args, ask = parsed
            # Printed before it goes (see connect_ws); a failure is the next line.
            console.sent((_ASK if ask else "") + format_event(name, args), typed=True)
            try:
                if ask:
                    await emit_asking(name, args)
                else:
                    await client.emit(name, *args, namespace=namespace)
            except (BufferFull, ValueError, TypeError) as exc:
                console.notice(f"cannot send {name!r}: {exc}")
        if awaited:  # end of input: the acknowledgements first (each has its timer)
            await asyncio.wait(set(awaited))

    with _terminal_kept(console):
        console.start_reading(loop, lines)
        sender = asyncio.ensure_future(send())
        finished = asyncio.ensure_future(client.wait())  # the server disconnected us, or gave up
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([sender, finished, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, finished, stopper):
                task.cancel()
            await asyncio.gather(sender, finished, stopper, return_exceptions=True)
            unsent = client.socket(namespace).buffered
            await client.disconnect()
    if unsent:
        console.notice(f"{unsent} event(s) not sent: the connection was down")
    return 1 if failed else 0


# ------------------------------------------------------------------ arguments


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _json_args(text: str) -> list[Any]:
    try:
        return _parse_args(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _transport_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or any(t not in ("polling", "websocket") for t in names):
        raise argparse.ArgumentTypeError(
            "a comma-separated list of polling and websocket, e.g. polling,websocket"
        )
    return names


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


_EPILOG = """\
lines (stdin and stdout):
  plain        each input line is a text message; what arrives is printed, binary
               as <binary, N bytes: hex...>
  --sio        [?]NAME [JSON]: a JSON array is the argument list, any other value the
               only argument, a name alone sends none; a name with spaces is a JSON
               string. "?" (or --ack) asks for an acknowledgement, printed as
               "ack NAME [ARGS]" (or a timeout notice). Server events print as
               "NAME [ARGS]", "?NAME [ARGS]" when the server asks for an
               acknowledgement, which is answered with --reply.
marks:
  "< " before what arrived, "> " before what was sent, notices on stderr; on by
  default when stdout is a terminal, off when piped.
input:
  on a terminal: line editing and history (up arrow), kept in
  $XDG_STATE_HOME/tether/history or ~/.tether_history; end of input (Ctrl-D) closes.
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``connect`` subcommand's parser, added to ``commands``."""
    client: argparse.ArgumentParser = commands.add_parser(
        "connect",
        help="talk to a WebSocket (or, with --sio, Socket.IO) server from the terminal",
        description="Print what arrives; send each stdin line. With --sio, lines are\n"
        "events. Notices go to stderr.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client.add_argument("url", help="ws:// or wss:// URL (with --sio: http(s):// or ws(s)://)")
    client.add_argument(
        "--marks",
        action=argparse.BooleanOptionalAction,
        default=None,
        help='prefix lines with "< " (arrived) and "> " (sent), notices on stderr'
        " (default: when stdout is a terminal)",
    )
    client.add_argument(
        "--sio", action="store_true", help="speak Socket.IO v5 instead of plain WebSocket"
    )
    client.add_argument(
        "--namespace", default=None, metavar="NS", help="the Socket.IO namespace (default /)"
    )
    client.add_argument(
        "--auth",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='the Socket.IO auth payload, a JSON object: \'{"token": "..."}\'',
    )
    client.add_argument(
        "--transports",
        type=_transport_list,
        default=None,
        metavar="LIST",
        help="Socket.IO transports, comma-separated (default polling,websocket)",
    )
    client.add_argument(
        "--ack",
        action="store_true",
        default=None,
        help="ask for an acknowledgement on every emit, as a leading ? does",
    )
    client.add_argument(
        "--ack-timeout",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="wait at most S seconds for an acknowledgement (default 5)",
    )
    client.add_argument(
        "--reply",
        type=_json_args,
        default=None,
        metavar="JSON",
        help="the arguments that answer the server's acknowledgement requests, read like"
        " a line's (default: none)",
    )
    return client


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run ``tether connect`` with parsed ``args``; returns the exit status.

    Raises:
        SystemExit: a usage error (through ``parser.error``).
    """
    console = Console(args.marks)
    if args.sio:
        namespace = args.namespace or "/"
        if not namespace.startswith("/") or "," in namespace:
            parser.error(f"--namespace: invalid namespace {namespace!r} (e.g. /chat)")
        return run(
            connect_sio(
                args.url,
                console,
                namespace=namespace,
                auth=args.auth,
                transports=args.transports,
                ack_all=bool(args.ack),
                ack_timeout=5.0 if args.ack_timeout is None else args.ack_timeout,
                reply=args.reply or (),
            )
        )
    sio_only = ("namespace", "auth", "transports", "ack", "ack_timeout", "reply")
    if any(getattr(args, name) is not None for name in sio_only):
        parser.error(
            "--namespace, --auth, --transports, --ack, --ack-timeout and --reply need --sio"
        )
    return run(connect_ws(args.url, console))
