"""Peers for the interop tests: reference servers and a byte-counting TCP relay.

The echo servers on every side speak the same small command language, so one test body can
run against any of them. A text message starting with ``cmd:`` is a command, anything else
is echoed back with its type kept:

- ``cmd:info``                  -> JSON: path, headers, extensions, subprotocol
- ``cmd:close:CODE:REASON``     -> the server closes with that code and reason
- ``cmd:ping:PAYLOAD``          -> the server pings; once the pong is in it sends ``pong:PAYLOAD``
- ``cmd:fragments:N:TEXT``      -> one text message made of N frames of TEXT
- ``cmd:binfragments:N:K``      -> one binary message of N frames of K bytes (byte i = i % 256)
- ``cmd:big:N``                 -> one binary message of N bytes (byte i = i % 251)

(``tests/node/ws_echo_server.js`` implements the same language for Node's ``ws``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import Node, NodeProcess

HOST = "127.0.0.1"


def pattern(n: int, modulo: int) -> bytes:
    """``n`` bytes, byte i being ``i % modulo`` (what ``cmd:big``, ``cmd:binfragments`` send)."""
    whole, rest = divmod(n, modulo)
    return bytes(range(modulo)) * whole + bytes(range(rest))


def extension_text(extensions: Any) -> str:
    """Normalise a connection's negotiated extensions (a header string or a list) to text."""
    if extensions is None:
        return ""
    if isinstance(extensions, str):
        return extensions.lower()
    if isinstance(extensions, bytes):
        return extensions.decode().lower()
    return ", ".join(str(getattr(e, "name", e)) for e in extensions).lower()


# --------------------------------------------------------------------------------------------
# websockets (Python) reference server
# --------------------------------------------------------------------------------------------


@dataclass
class PeerLog:
    """What a reference server saw: one entry per connection."""

    closes: list[tuple[int | None, str | None]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    closed_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_closes(
        self, n: int = 1, timeout: float = 5.0
    ) -> list[tuple[int | None, str | None]]:
        """Wait (bounded) until ``n`` connections have finished on the server side."""
        async with asyncio.timeout(timeout):
            while len(self.closes) < n:
                self.closed_event.clear()
                await self.closed_event.wait()
        return self.closes


async def _websockets_command(conn: Any, cmd: str) -> None:
    name, _, rest = cmd.partition(":")
    if name == "info":
        await conn.send(
            json.dumps(
                {
                    "path": conn.request.path,
                    "headers": {k.lower(): v for k, v in conn.request.headers.raw_items()},
                    "extensions": [e.name for e in conn.protocol.extensions],
                    "subprotocol": conn.subprotocol,
                }
            )
        )
    elif name == "close":
        code, _, reason = rest.partition(":")
        await conn.close(int(code), reason)
    elif name == "ping":
        waiter = await conn.ping(rest.encode())
        await asyncio.wait_for(waiter, 5)
        await conn.send(f"pong:{rest}")
    elif name == "fragments":
        n, _, text = rest.partition(":")
        await conn.send([text] * int(n))
    elif name == "binfragments":
        n, _, k = rest.partition(":")
        await conn.send([pattern(int(k), 256)] * int(n))
    elif name == "big":
        await conn.send(pattern(int(rest), 251))
    else:
        await conn.send(f"error:unknown command {cmd}")


@pytest.fixture
async def websockets_server() -> AsyncIterator[Callable[..., Awaitable[tuple[int, PeerLog]]]]:
    """Factory: ``port, log = await websockets_server(compression=..., **serve_kwargs)``."""
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    servers: list[Any] = []

    async def start(**kwargs: Any) -> tuple[int, PeerLog]:
        log = PeerLog()

        async def handler(conn: Any) -> None:
            log.paths.append(conn.request.path)
            try:
                async for message in conn:
                    if isinstance(message, str) and message.startswith("cmd:"):
                        await _websockets_command(conn, message[4:])
                    else:
                        await conn.send(message)
            except ConnectionClosed:
                pass
            except Exception as exc:  # kept for the test to inspect
                log.errors.append(exc)
                raise
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.wait_closed(), 5)
                log.closes.append((conn.close_code, conn.close_reason))
                log.closed_event.set()

        kwargs.setdefault("max_size", 2**22)
        server = await serve(handler, HOST, 0, **kwargs)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return port, log

    yield start
    for server in servers:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


# --------------------------------------------------------------------------------------------
# tether server running the same echo/command handler
# --------------------------------------------------------------------------------------------


async def _tether_command(ws: Any, cmd: str) -> None:
    # ``ping`` ignores the payload on the wire: tether's ping() chooses its own.
    name, _, rest = cmd.partition(":")
    if name == "info":
        headers = ws.request.headers
        items = headers.items() if hasattr(headers, "items") else headers
        await ws.send(
            json.dumps(
                {
                    "path": ws.request.path,
                    "headers": {str(k).lower(): str(v) for k, v in items},
                    "extensions": extension_text(ws.extensions),
                    "subprotocol": ws.subprotocol,
                }
            )
        )
    elif name == "close":
        code, _, reason = rest.partition(":")
        await ws.close(code=int(code), reason=reason)
    elif name == "ping":
        await asyncio.wait_for(ws.ping(), 5)
        await ws.send(f"pong:{rest}")
    elif name == "fragments":
        n, _, text = rest.partition(":")

        async def parts() -> AsyncIterator[str]:
            for _ in range(int(n)):
                yield text

        await ws.send(parts())
    elif name == "big":
        await ws.send(pattern(int(rest), 251))
    else:
        await ws.send(f"error:unknown command {cmd}")


@pytest.fixture
async def tether_server() -> AsyncIterator[Callable[..., Awaitable[tuple[int, PeerLog]]]]:
    """Factory: ``port, log = await tether_server(compression=..., **serve_kwargs)``.

    Serves the echo/command handler; ``log.closes`` gets ``(close_code, close_reason)`` of
    every finished connection as the server saw it.
    """
    import tether

    servers: list[Any] = []

    async def start(**kwargs: Any) -> tuple[int, PeerLog]:
        log = PeerLog()

        async def handler(ws: Any) -> None:
            log.paths.append(ws.request.path)
            try:
                async for message in ws:
                    if isinstance(message, str) and message.startswith("cmd:"):
                        await _tether_command(ws, message[4:])
                    else:
                        await ws.send(message)
            except tether.ConnectionClosed:
                pass
            except Exception as exc:  # kept for the test to inspect
                log.errors.append(exc)
                raise
            finally:
                log.closes.append((ws.close_code, ws.close_reason))
                log.closed_event.set()

        server = await tether.serve(handler, HOST, 0, **kwargs)
        servers.append(server)
        return server.port, log

    yield start
    for server in servers:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


# --------------------------------------------------------------------------------------------
# Node `ws` reference server (one process per module and option set)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_node_server(node: Node) -> Iterator[Callable[..., NodeProcess]]:
    """Factory: ``ws_node_server(deflate=True, protocols="a,b")`` -> running NodeProcess."""
    cache: dict[tuple[bool, str], NodeProcess] = {}

    def get(deflate: bool = False, protocols: str = "") -> NodeProcess:
        key = (deflate, protocols)
        handle = cache.get(key)
        if handle is None or handle.proc.poll() is not None:
            args: list[object] = ["--port", 0]
            if deflate:
                args.append("--deflate")
            if protocols:
                args += ["--protocols", protocols]
            handle = node.start("ws_echo_server.js", *args)
            cache[key] = handle
        return handle

    yield get
    for handle in cache.values():
        handle.stop()


# --------------------------------------------------------------------------------------------
# Byte-counting TCP relay: proves compression on the wire, whatever the peers report
# --------------------------------------------------------------------------------------------


class CountingRelay:
    """Forwards 127.0.0.1:<port> to a target port and counts the bytes in each direction."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.upstream = 0  # client -> server
        self.downstream = 0  # server -> client
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def reset(self) -> None:
        self.upstream = self.downstream = 0

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if up:
                    self.upstream += len(data)
                else:
                    self.downstream += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(HOST, self.target_port)
        for args in ((c_reader, s_writer, True), (s_reader, c_writer, False)):
            task = asyncio.ensure_future(self._pipe(*args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)


@pytest.fixture
async def counting_relay() -> AsyncIterator[Callable[[int], Awaitable[CountingRelay]]]:
    relays: list[CountingRelay] = []

    async def start(target_port: int) -> CountingRelay:
        relay = await CountingRelay(target_port).start()
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        await relay.close()
