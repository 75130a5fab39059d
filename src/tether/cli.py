"""The ``tether`` command line.

::

    tether demo [--host H] [--port P] [--client-js PATH] [--drain-period S]
                                                           the chat demo (page + hub)
    tether echo [--host H] [--port P]                      a plain WebSocket echo server
    tether connect URL                                     an interactive WebSocket client
    tether connect --sio URL [--namespace NS] [--auth JSON] [--transports LIST]
                                                           an interactive Socket.IO client

``connect`` prints every message that arrives (binary ones as a short hex summary) and
sends each line read from stdin as a text message; end of input closes the connection.

``connect --sio`` talks Socket.IO v5 instead (tether's Hub, the Node ``socket.io`` server),
with automatic reconnection. One event per line, both ways::

    NAME [JSON]

- stdout gets every event the server sends, as its name, a space and its arguments as a
  JSON array: ``chat ["hi", 2]``; ``ping []`` for none.
- each stdin line is emitted as an event. The rest of the line after the name is one JSON
  value: a JSON array is the argument list (``chat ["hi", 2]`` sends two arguments), any
  other value is the only argument (``chat "hi"``, ``chat {"a": 1}``), and a name alone
  sends no argument. A name with spaces, or one starting with ``"``, is written as a JSON
  string: ``"chat message" "hi"``. Blank lines are skipped.
- binary arguments are shown as ``{"$binary": "<base64>"}``, and that object is sent as
  binary.
- a line that cannot be parsed (bad JSON, a reserved event name) is reported on stderr and
  skipped; the connection goes on.
- connect, disconnect and reconnect notices go to stderr.

End of input disconnects; so does Ctrl-C. The exit status is 1 when the first connection
failed, the server refused the namespace or reconnection gave up, else 0.
Servers stop cleanly on Ctrl-C or SIGTERM.

Deploys: on SIGTERM, ``tether demo`` drains its hub (:meth:`tether.realtime.Hub.drain`)
before it exits: new Engine.IO handshakes get 503 with ``Retry-After``, ``GET /health``
answers 503 ``draining`` (200 ``ok`` before), and the connected clients are disconnected
at random moments over ``--drain-period`` seconds (default 10; 0 disconnects them at
once), so they reconnect through the load balancer to the other nodes, spread out. Keep
the period below the orchestrator's grace before SIGKILL (30 s on Kubernetes). Ctrl-C
(SIGINT), or a second signal during the drain, stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import json
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, cli_serve, run
from .asyncio import WebSocket, connect, serve
from .cli_serve import stop_event as _stop_event
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidInput, InvalidURI, OpenTimeout
from .logs import LEVELS
from .logs import configure as configure_logs

__all__ = ["main"]


def _say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------ demo


async def _demo(host: str, port: int, client_js: Path | None, drain_period: float = 10.0) -> int:
    from .demo.app import find_client_js, serve_demo
    from .realtime.drain import readiness

    if client_js is None and find_client_js() is None:
        print(
            "warning: socket.io.min.js not found (run `make node-deps` or pass --client-js);"
            " the page will not connect",
            file=sys.stderr,
        )
    elif client_js is not None and not client_js.is_file():
        print(f"warning: {client_js} does not exist", file=sys.stderr)
    stop, term = _stop_event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        # SIGTERM (a deploy) drains first; SIGINT stops at once.
        loop.add_signal_handler(signal.SIGTERM, term.set)
    hub, server = await serve_demo(host, port, client_js=client_js)
    hub.engine.fallback = readiness(hub, hub.engine.fallback)
    _say(f"tether demo on http://{_url_host(host)}:{server.port}")
    try:
        stopping = asyncio.ensure_future(stop.wait())
        terminating = asyncio.ensure_future(term.wait())
        try:
            await asyncio.wait([stopping, terminating], return_when=asyncio.FIRST_COMPLETED)
        finally:
            terminating.cancel()
        if term.is_set() and not stop.is_set():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, stop.set)  # a second one: at once
            _say(f"draining over {drain_period:g}s")
            draining = asyncio.ensure_future(hub.drain(period=drain_period))
            try:
                await asyncio.wait([draining, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                draining.cancel()
                stopping.cancel()
            if draining.done() and not draining.cancelled():
                result = draining.result()
                _say(f"drained: {result.closed} client(s) moved, {result.remaining} left")
        stopping.cancel()
    finally:
        await hub.close()
        server.close()
        await server.wait_closed()
    return 0


# ------------------------------------------------------------------ echo


async def _echo_handler(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def _echo(host: str, port: int) -> int:
    stop = _stop_event()
    server = await serve(_echo_handler, host, port)
    _say(f"tether echo on ws://{_url_host(host)}:{server.port}")
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
    return 0


# ------------------------------------------------------------------ connect


def _describe(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    head = message[:32].hex(" ")
    more = " …" if len(message) > 32 else ""
    return f"<binary, {len(message)} bytes: {head}{more}>"


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into ``queue`` from a daemon thread (None at end of input).

    A daemon thread, not ``to_thread``: a blocked read must not keep the process alive
    after the connection is gone.
    """

    def pump() -> None:
        try:
            for line in sys.stdin:
                # Blocks this thread while the queue is full: pasted input waits its turn.
                asyncio.run_coroutine_threadsafe(queue.put(line.rstrip("\r\n")), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):
            pass  # the loop is gone: the connection is over

    threading.Thread(target=pump, name="tether-stdin", daemon=True).start()


async def _connect(url: str) -> int:
    try:
        ws = await connect(url)
    except (InvalidURI, InvalidHandshake, OpenTimeout, OSError) as exc:
        print(f"cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    _say(f"connected to {url} (Ctrl-D to close)")
    stop = _stop_event()
    lines: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)
    _stdin_lines(asyncio.get_running_loop(), lines)

    async def receive() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                _say(_describe(message))

    async def send() -> None:
        with contextlib.suppress(ConnectionClosed):
            while (line := await lines.get()) is not None:
                await ws.send(line)
            # End of input: close; receive() still prints what arrives before the close.
            await ws.close(1000)

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
    _say(f"connection closed: code {code}" + (f" ({reason})" if reason else ""))
    return 0 if code in (1000, 1001, None) else 1


# ------------------------------------------------------------------ connect --sio

_BINARY_KEY = "$binary"
_PLAIN_NAME = re.compile(r'[^\s"]\S*')


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


def format_event(event: object, args: Sequence[Any]) -> str:
    """One output line: the event name (a JSON string if it has spaces), a space, and the
    arguments as a JSON array; binary values as ``{"$binary": "<base64>"}``."""
    name = event if isinstance(event, str) else str(event)
    if not _PLAIN_NAME.fullmatch(name):
        name = json.dumps(name, ensure_ascii=False)
    return f"{name} {json.dumps(list(args), ensure_ascii=False, default=_binary_out)}"


def parse_line(line: str) -> tuple[str, list[Any]] | None:
    """Parse one input line ``NAME [JSON]`` (see the module docstring).

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
    rest = rest.strip()
    if not rest:
        return name, []
    try:
        value = json.loads(rest, object_hook=_binary_in)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the arguments are not JSON ({exc})") from None
    return name, value if isinstance(value, list) else [value]


def _notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _error_text(data: Any) -> str:
    if isinstance(data, dict) and "message" in data:
        extra = f" {json.dumps(data['data'])}" if data.get("data") is not None else ""
        return f"{data['message']}{extra}"
    return str(data)


async def _connect_sio(
    url: str, namespace: str, auth: dict[str, Any] | None, transports: list[str] | None
) -> int:
    from .realtime.client import BufferFull, Client, ConnectError

    client = Client()
    failed = False

    def on_event(event: object, *args: Any) -> None:
        _say(format_event(event, args))

    def on_connect() -> None:
        sock = client.socket(namespace)
        _notice(f"connected to {namespace} (sid {sock.sid}, transport {client.transport})")

    def on_connect_error(data: Any) -> None:
        nonlocal failed
        failed = True
        _notice(f"connect error on {namespace}: {_error_text(data)}")

    def on_reconnect_failed() -> None:
        nonlocal failed
        failed = True
        _notice("reconnection gave up")

    client.on("*", on_event, namespace=namespace)
    client.on("connect", on_connect, namespace=namespace)
    client.on("connect_error", on_connect_error, namespace=namespace)
    client.on("disconnect", lambda reason: _notice(f"disconnected: {reason}"), namespace=namespace)
    client.on("reconnect_attempt", lambda n: _notice(f"reconnecting (attempt {n})"))
    client.on("reconnect", lambda n: _notice(f"reconnected after {n} attempt(s)"))
    client.on("reconnect_failed", on_reconnect_failed)
    try:
        await client.connect(url, namespaces=[namespace], auth=auth, transports=transports)
    except ConnectError as exc:
        _notice(f"cannot connect to {url}: {exc}")
        return 1
    stop = _stop_event()
    lines: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)
    _stdin_lines(asyncio.get_running_loop(), lines)

    async def send() -> None:
        while (line := await lines.get()) is not None:
            try:
                parsed = parse_line(line)
            except InvalidInput as exc:
                _notice(f"invalid line {line!r}: {exc}; expected NAME [JSON]")
                continue
            if parsed is None:
                continue
            name, args = parsed
            try:
                await client.emit(name, *args, namespace=namespace)
            except (BufferFull, ValueError, TypeError) as exc:
                _notice(f"cannot send {name!r}: {exc}")

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
        _notice(f"{unsent} event(s) not sent: the connection was down")
    return 1 if failed else 0


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _transport_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or any(t not in ("polling", "websocket") for t in names):
        raise argparse.ArgumentTypeError(
            "a comma-separated list of polling and websocket, e.g. polling,websocket"
        )
    return names


# ------------------------------------------------------------------ entry point


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether", description="Real-time communication over WebSockets."
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=None,
        help="what to log on stderr (default: info for servers, warning for connect)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (default) or one JSON object per line",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="serve the chat demo (page, client and hub)")
    demo.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any)")
    demo.add_argument(
        "--client-js",
        type=Path,
        default=None,
        metavar="PATH",
        help="the socket.io.min.js to serve (default: found under tests/node/node_modules)",
    )

    demo.add_argument(
        "--drain-period",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="on SIGTERM, disconnect the clients over S seconds before exiting (default 10)",
    )

    cli_serve.add_parser(commands)

    echo = commands.add_parser("echo", help="serve a plain WebSocket echo")
    echo.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    echo.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any)")

    client = commands.add_parser(
        "connect",
        help="talk to a WebSocket (or, with --sio, Socket.IO) server from the terminal",
        description="Print what arrives; send each stdin line. With --sio, lines are"
        " events: NAME [JSON] (a JSON array is the argument list, any other value the only"
        " argument, a name alone sends none); notices go to stderr.",
    )
    client.add_argument("url", help="ws:// or wss:// URL (with --sio: http(s):// or ws(s)://)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    default_level = "warning" if args.command == "connect" else "info"
    configure_logs(args.log_level or default_level, args.log_format)
    try:
        if args.command == "demo":
            return run(_demo(args.host, args.port, args.client_js, args.drain_period))
        if args.command == "echo":
            return run(_echo(args.host, args.port))
        if args.command == "serve":
            return cli_serve.main(args, argv)
        if args.sio:
            namespace = args.namespace or "/"
            if not namespace.startswith("/") or "," in namespace:
                parser.error(f"--namespace: invalid namespace {namespace!r} (e.g. /chat)")
            return run(_connect_sio(args.url, namespace, args.auth, args.transports))
        if args.namespace is not None or args.auth is not None or args.transports is not None:
            parser.error("--namespace, --auth and --transports need --sio")
        return run(_connect(args.url))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # typically: the address is in use
        print(f"tether: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
