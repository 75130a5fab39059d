"""Fixtures for the asyncio layer: tether servers on 127.0.0.1, and hand-driven peers.

- ``serve_ws``: ``server = await serve_ws(handler, **serve_kwargs)``; closed at teardown.
- ``raw_ws``: ``peer = await raw_ws(port)``: a TCP client that does the upgrade by hand and
  then reads and writes exactly what the test says (it never answers pings or closes on
  its own). Incoming frames are parsed with a sans-I/O client ``Connection`` whose own
  output is thrown away.
- ``raw_server``: ``port = await raw_server(behaviour)``: a TCP server that answers the
  upgrade by hand (or not at all) and then runs ``behaviour(reader, writer)``.

Every wait is bounded; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import tether
from tether.protocol import Connection, Event, Side, accept_key, serialize_frame
from tether.protocol.handshake import generate_key

HOST = "127.0.0.1"
BOUND = 10.0  # upper bound on any single wait: a hang fails, a slow machine does not


class RawClient:
    """A WebSocket client driven by hand over a non-blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.parser = Connection(Side.CLIENT, max_size=None)
        self.eof = False
        self.head = b""

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        await self.send(serialize_frame(opcode, payload, fin=fin, mask=b"\x11\x22\x33\x44"))

    async def recv(self, n: int = 65536) -> bytes:
        """Bytes from the socket; b"" at EOF (a reset counts as EOF)."""
        if self.eof:
            return b""
        try:
            async with asyncio.timeout(BOUND):
                data = await self.loop.sock_recv(self.sock, n)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
        return data

    async def handshake(self, path: str = "/", headers: tuple[tuple[str, str], ...] = ()) -> bytes:
        key = generate_key()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {HOST}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers),
        ]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = await self.recv(1)  # byte by byte: never read past the head
            if not chunk:
                raise AssertionError(f"EOF during the handshake: {buf!r}")
            buf += chunk
        self.head = buf
        assert buf.startswith(b"HTTP/1.1 101"), buf
        assert accept_key(key).encode() in buf
        return buf

    async def next_events(self) -> list[Event]:
        """Read until at least one event is parsed; [] at EOF."""
        while True:
            events = self.parser.events_received()
            if events:
                return events
            data = await self.recv()
            if not data:
                return []
            self.parser.receive_data(data)
            self.parser.data_to_send()  # never answer: pongs and close echoes are dropped

    async def events_until_eof(self) -> list[Event]:
        events: list[Event] = []
        async with asyncio.timeout(BOUND):
            while batch := await self.next_events():
                events.extend(batch)
        return events

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def serve_ws() -> AsyncIterator[Callable[..., Awaitable[tether.Server]]]:
    servers: list[tether.Server] = []

    async def start(handler: Any, **kwargs: Any) -> tether.Server:
        kwargs.setdefault("ping_interval", None)
        server = await tether.serve(handler, HOST, kwargs.pop("port", 0), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), BOUND)


@pytest.fixture
async def raw_ws() -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    clients: list[RawClient] = []

    async def open_client(
        port: int, *, rcvbuf: int | None = None, handshake: bool = True, path: str = "/"
    ) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        client = RawClient(sock)
        clients.append(client)
        async with asyncio.timeout(BOUND):
            await client.loop.sock_connect(sock, (HOST, port))
            if handshake:
                await client.handshake(path)
        return client

    yield open_client
    for client in clients:
        client.close()


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def start(behaviour: Behaviour, *, upgrade: bool = True) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                if upgrade:
                    head = await reader.readuntil(b"\r\n\r\n")
                    key = ""
                    for line in head.decode("latin-1").split("\r\n"):
                        name, _, value = line.partition(":")
                        if name.strip().lower() == "sec-websocket-key":
                            key = value.strip()
                    writer.write(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                        + accept_key(key).encode()
                        + b"\r\n\r\n"
                    )
                await behaviour(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass

        server = await asyncio.start_server(serve, HOST, 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for writer in writers:
        writer.transport.abort()
    for server in servers:
        server.close()
    for task in list(tasks):
        task.cancel()
    for server in servers:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), BOUND)
