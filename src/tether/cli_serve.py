"""``tether serve module:attr``: serve your own app.

``attr`` is one of:

- a :class:`~tether.realtime.Hub`: served with tether's server (both transports on one
  port); with ``--redis URL`` it is put on a :class:`~tether.broker.RedisBroker` first
  (needed with ``--workers`` above 1, so rooms and broadcasts span the workers; polling
  needs no stickiness between them);
- a plain WebSocket handler ``async def handler(ws)``: served with :func:`tether.serve`;
- an ASGI application ``async def app(scope, receive, send)`` (Starlette, FastAPI, or
  ``tether.asgi.ASGIApp``): served with uvicorn (the ``asgi`` extra).

``--workers N`` runs N processes on one port: the parent reserves the port (any free one
with ``--port 0``) and starts N workers that each listen on it with ``SO_REUSEPORT``, so the
kernel spreads new connections over them. SIGTERM or SIGINT stops everything gracefully,
without a traceback. uvloop is used when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Any

from . import run
from .asyncio import serve
from .exceptions import InvalidOption

__all__ = ["add_parser", "main"]

#: How long a worker may take to import the app and listen.
WORKER_START_TIMEOUT = 60.0


def load(target: str) -> Any:
    """Import ``module:attr`` (dotted attributes allowed), from the current directory too.

    Raises:
        InvalidOption: a malformed target, a module that does not import, a missing attribute.
    """
    module_name, colon, attr = target.partition(":")
    if not colon or not module_name or not attr:
        raise InvalidOption(f"expected module:attr (like app:hub), not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidOption(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidOption(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def kind_of(app: Any) -> str:
    """``"hub"``, ``"handler"`` or ``"asgi"``.

    Raises:
        InvalidOption: it is none of them.
    """
    from .realtime import Hub

    if isinstance(app, Hub):
        return "hub"
    if callable(app):
        try:
            params = [
                p
                for p in inspect.signature(app).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            params = []
        if len(params) == 1:
            return "handler"
        if len(params) == 3:
            return "asgi"
    raise InvalidOption(
        f"{app!r} is not a Hub, a WebSocket handler (ws) or an ASGI app (scope, receive, send)"
    )


def _ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile:
        if args.keyfile:
            raise InvalidOption("--keyfile needs --certfile")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidOption(f"cannot load the certificate: {exc}") from exc
    return context


def stop_event() -> asyncio.Event:
    """An event set on SIGINT/SIGTERM (where the loop supports signal handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve_one(app: Any, kind: str, args: argparse.Namespace, port: int) -> int:
    """Serve in this process until SIGTERM/SIGINT."""
    context = _ssl(args)
    reuse = args.workers > 1 or args.worker
    stop = stop_event()
    if kind == "hub":
        if args.redis:
            from .broker import RedisBroker

            app.use_broker(RedisBroker(args.redis, prefix=args.redis_prefix))
        if args.metrics:
            app.expose()
        async with app.serve(args.host, port, ssl=context, reuse_port=reuse) as server:
            _ready(args, server.port, context)
            await stop.wait()
        if args.redis:
            await app.broker.close()
        return 0
    if kind == "handler":
        async with serve(app, args.host, port, ssl=context, reuse_port=reuse) as server:
            _ready(args, server.port, context)
            await stop.wait()
        return 0
    try:
        import uvicorn
    except ImportError:
        raise InvalidOption("an ASGI app needs uvicorn: pip install 'tether[asgi]'") from None
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, port))
    config = uvicorn.Config(
        app,
        log_level=args.log_level or "info",
        loop="none",
        lifespan="auto",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )
    server = uvicorn.Server(config)
    # Our SIGTERM/SIGINT handlers stop it (uvicorn's own would re-raise the signal after
    # shutting down, ending the process with a signal status instead of 0).
    setattr(server, "capture_signals", contextlib.nullcontext)  # noqa: B010
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        await task
        return 1
    _ready(args, sock.getsockname()[1], context)
    await stop.wait()
    server.should_exit = True
    await task
    return 0


def _ready(args: argparse.Namespace, port: int, context: ssl.SSLContext | None) -> None:
    if args.worker:
        print("ready", flush=True)  # to the parent, which says it once for all
        return
    scheme = "https" if context is not None else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tether serving {args.app} on {scheme}://{host}:{port}", flush=True)


def _reserve(host: str, port: int) -> socket.socket:
    """Hold ``host:port`` (any free port for 0) with SO_REUSEPORT, without listening, so
    the workers can all bind it and the port number is known before they start."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Start ``--workers`` processes on one port; stop them all on SIGTERM/SIGINT or when
    one of them exits."""
    reserved = _reserve(args.host, args.port)
    port = reserved.getsockname()[1]
    command = [sys.executable, "-m", "tether.cli", *argv, "--worker", "--port", str(port)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(args.workers)]
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    for worker in workers:  # every worker listens before we say so (bounded)
        assert worker.stdout is not None
        left = deadline - time.monotonic()
        ready = left > 0 and select.select([worker.stdout], [], [], left)[0]
        if not ready or worker.stdout.readline().strip() != b"ready":
            for other in workers:
                if other.poll() is None:
                    other.send_signal(signal.SIGTERM)
            for other in workers:
                try:
                    other.wait(10)
                except subprocess.TimeoutExpired:
                    other.kill()
                    other.wait()
            reserved.close()
            print(
                f"tether serve: a worker did not start within {WORKER_START_TIMEOUT:g}s"
                " (see its errors above)",
                file=sys.stderr,
            )
            return 1
    context = _ssl(args)
    scheme = "https" if context is not None else "http"
    print(
        f"tether serving {args.app} on {scheme}://{args.host}:{port} "
        f"({args.workers} workers: {' '.join(str(w.pid) for w in workers)})",
        flush=True,
    )
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    try:
        while True:
            done = [w for w in workers if w.poll() is not None]
            if done and not stopping:
                status = 1
                stop(signal.SIGTERM, None)  # one died: stop the others (a supervisor restarts)
            if len(done) == len(workers):
                break
            time.sleep(0.1)
    finally:
        reserved.close()
    return status


def add_parser(commands: Any) -> None:
    """The ``serve`` subcommand's arguments."""
    parser = commands.add_parser(
        "serve",
        help="serve your app: a Hub, a WebSocket handler or an ASGI app (module:attr)",
    )
    parser.add_argument("app", help="module:attr, e.g. myapp:hub")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any)")
    parser.add_argument("--certfile", default=None, help="TLS certificate chain (PEM)")
    parser.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    parser.add_argument("--workers", type=int, default=1, help="processes on one port")
    parser.add_argument("--redis", default=None, metavar="URL", help="put a Hub on Redis")
    parser.add_argument(
        "--redis-prefix", default="tether", help="the Redis key prefix (default tether)"
    )
    parser.add_argument("--metrics", action="store_true", help="a Hub serves /metrics and /healthz")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``tether serve``; returns the exit status."""
    try:
        if args.workers < 1:
            raise InvalidOption("--workers must be at least 1")
        app = load(args.app)
        kind = kind_of(app)
        if kind == "hub" and args.workers > 1 and not args.redis:
            raise InvalidOption("a Hub on several workers needs --redis URL (rooms span them)")
        if args.metrics and kind != "hub":
            raise InvalidOption("--metrics needs a Hub")
        _ssl(args)  # a bad certificate fails before anything starts
        if args.workers > 1 and not args.worker:
            return _supervise(args, argv)
        return run(_serve_one(app, kind, args, args.port))
    except InvalidOption as exc:
        print(f"tether serve: {exc}", file=sys.stderr)
        return 2
