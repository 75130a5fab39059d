"""The ``tether`` command line.

::

    tether demo [--host H] [--port P] [--client-js PATH] [--drain-period S]
                                                           the chat demo (page + hub)
    tether echo [--host H] [--port P]                      a plain WebSocket echo server
    tether connect URL [--marks | --no-marks]              an interactive WebSocket client
    tether connect --sio URL [--namespace NS] [--auth JSON] [--transports LIST]
                   [--ack] [--ack-timeout S] [--reply JSON]
                                                           an interactive Socket.IO client

``connect`` (:mod:`tether.cli_connect`, where the line formats are described in full)
sends each line read from stdin and prints what arrives. On a terminal, lines are marked
as in ``wscat``: ``< `` what arrived, ``> `` what was sent, notices on stderr; input has
line editing and a history (``$XDG_STATE_HOME/tether/history`` or ``~/.tether_history``).
Piped, stdout gets what arrived, unmarked (``--marks`` / ``--no-marks`` decide instead).
End of input, Ctrl-C or SIGTERM closes the connection.

``connect --sio`` talks Socket.IO v5 instead (tether's Hub, the Node ``socket.io`` server),
with automatic reconnection. One event per line, both ways, ``[?]NAME [JSON]``:
``chat ["hi", 2]`` emits ``chat`` with two arguments and prints that way what the server
emits; ``?sum [1, 2]`` (or every line, with ``--ack``) asks for an acknowledgement, printed
as ``ack sum [3]`` (or a notice after ``--ack-timeout`` seconds); an event the server wants
acknowledged is printed as ``?NAME [ARGS]`` and answered with ``--reply``.

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
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, cli_connect, cli_serve, run
from .asyncio import WebSocket, serve
from .cli_serve import stop_event as _stop_event
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

    cli_connect.add_parser(commands)
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
        return cli_connect.main(args, parser)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # typically: the address is in use
        print(f"tether: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
