"""Shared plumbing for the benchmark servers: arguments, TLS context, the !bcast command.

Every server behaves the same way:

- echo every message with its type (text stays text, binary stays binary);
- on the text message ``!bcast K SIZE``, send K text messages of SIZE bytes to every
  connected client (the command itself is not echoed);
- compression off, pings off, a 16 MiB message limit, uvloop for the Python servers.
"""

from __future__ import annotations

import argparse
import ssl

MAX_SIZE = 16 * 1024 * 1024
BCAST_PREFIX = "!bcast "


def parse_args(name: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"{name} benchmark server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), default=None)
    return parser.parse_args()


def ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls[0], args.tls[1])
    return context


def parse_bcast(message: str) -> tuple[int, str] | None:
    """Return (count, payload) for a ``!bcast K SIZE`` command, else None."""
    if not message.startswith(BCAST_PREFIX):
        return None
    _, count, size = message.split()
    return int(count), "x" * int(size)


def ready(name: str, port: int) -> None:
    print(f"{name} listening on {port}", flush=True)
