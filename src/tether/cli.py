"""The ``tether`` command line.

::

    tether demo [--host H] [--port P] [--client-js PATH]   the chat demo (page + hub)
    tether echo [--host H] [--port P]                      a plain WebSocket echo server
    tether connect URL                                     an interactive WebSocket client

``connect`` prints every message that arrives (binary ones as a short hex summary) and
sends each line read from stdin as a text message; end of input closes the connection.
Servers stop cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import __version__, run
from .asyncio import WebSocket, connect, serve
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidURI, OpenTimeout

__all__ = ["main"]


def _stop_event() -> asyncio.Event:
    """An event set on SIGINT/SIGTERM (where the loop supports signal handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------ demo


async def _demo(host: str, port: int, client_js: Path | None) -> int:
    from .demo.app import find_client_js, serve_demo

    if client_js is None and find_client_js() is None:
        print(
            "warning: socket.io.min.js not found (run `make node-deps` or pass --client-js);"
            " the page will not connect",
            file=sys.stderr,
        )
    elif client_js is not None and not client_js.is_file():
        print(f"warning: {client_js} does not exist", file=sys.stderr)
    stop = _stop_event()
    hub, server = await serve_demo(host, port, client_js=client_js)
    _say(f"tether demo on http://{_url_host(host)}:{server.port}")
    try:
        await stop.wait()
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


# ------------------------------------------------------------------ entry point


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether", description="Real-time communication over WebSockets."
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
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

    echo = commands.add_parser("echo", help="serve a plain WebSocket echo")
    echo.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    echo.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any)")

    client = commands.add_parser("connect", help="talk to a WebSocket server from the terminal")
    client.add_argument("url", help="ws:// or wss:// URL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "demo":
            return run(_demo(args.host, args.port, args.client_js))
        if args.command == "echo":
            return run(_echo(args.host, args.port))
        return run(_connect(args.url))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # typically: the address is in use
        print(f"tether: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
