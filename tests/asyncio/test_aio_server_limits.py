"""Connection limits of the server: counted from accept (so they cannot be walked around
by opening first and upgrading later), per client IP, a rate per IP, refusals that say
why (503/429 with ``Retry-After``; close 1013 on WebSocket) and cost bounded memory, and a
keep-alive client that never reads its responses (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct

import pytest

import tether
from tether.asyncio import server as server_module
from tether.exceptions import ConnectionClosed, InvalidOption
from tether.protocol.handshake import Request, Response

HOST = "127.0.0.1"
BOUND = 10.0


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def echo(ws: tether.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def hello(request: Request) -> Response:
    return Response.text(200, "hello")


def upgrade_request(path: str = "/") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def read_close_code(reader: asyncio.StreamReader) -> int:
    """Read a 101 head and the server's first frame, which must be a close frame."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    assert head.startswith(b"HTTP/1.1 101"), head
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), BOUND)
    assert b0 == 0x88, hex(b0)  # FIN + close
    payload = await reader.readexactly(b1 & 0x7F)
    return int(struct.unpack("!H", payload[:2])[0])


async def http_get(port: int) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)).decode()
    finally:
        writer.close()
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


async def test_connections_opened_first_and_upgraded_later_are_counted_from_accept() -> None:
    async with tether.serve(echo, HOST, 0, max_connections=10) as server:
        streams = [await asyncio.open_connection(HOST, server.port) for _ in range(50)]
        await asyncio.sleep(0.05)
        assert server.open_count == 10
        for _, writer in streams:
            writer.write(upgrade_request())
        admitted = refused = 0
        for reader, _ in streams:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            assert head.startswith(b"HTTP/1.1 101"), head
            try:
                b0, b1 = await asyncio.wait_for(reader.readexactly(2), 0.2)
            except TimeoutError:
                admitted += 1  # an open WebSocket: the echo server sends nothing first
                continue
            assert b0 == 0x88, hex(b0)  # a close frame
            code = struct.unpack("!H", (await reader.readexactly(b1 & 0x7F))[:2])[0]
            assert code == 1013
            refused += 1
        assert len(server.connections) == 10
        assert (admitted, refused) == (10, 40)
        refusals = server.metrics.get("tether_connections_refused_total", reason="max_connections")
        assert refusals == 40
        for _, writer in streams:
            writer.close()
        for _ in range(200):
            if server.open_count == 0:
                break
            await asyncio.sleep(0.02)
        assert server.open_count == 0
        assert not server.connections  # and the closed WebSockets are forgotten
        # Places are given back: a new client is served.
        async with tether.connect(f"ws://{HOST}:{server.port}/") as ws:
            await ws.send("again")
            assert await asyncio.wait_for(ws.recv(), BOUND) == "again"


async def test_a_refused_websocket_client_sees_close_1013_and_plain_http_sees_503() -> None:
    async with tether.serve(echo, HOST, 0, max_connections=1, http_handler=hello) as server:  # noqa: SIM117
        async with tether.connect(f"ws://{HOST}:{server.port}/") as first:
            refused = await tether.connect(f"ws://{HOST}:{server.port}/")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(refused.recv(), BOUND)
            assert closed.value.code == 1013
            assert closed.value.reason == "too many connections"
            status, headers = await http_get(server.port)
            assert status == 503
            assert headers["retry-after"] == "5"
            await first.send("still served")
            assert await asyncio.wait_for(first.recv(), BOUND) == "still served"


async def test_max_connections_per_ip() -> None:
    async with tether.serve(echo, HOST, 0, max_connections_per_ip=3, http_handler=hello) as server:
        clients = [await tether.connect(f"ws://{HOST}:{server.port}/") for _ in range(3)]
        status, headers = await http_get(server.port)
        assert (status, headers["retry-after"]) == (429, "5")
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(upgrade_request())
        assert await read_close_code(reader) == 1013
        writer.close()
        assert (
            server.metrics.get("tether_connections_refused_total", reason="max_connections_per_ip")
            == 2
        )
        await clients.pop().close()
        for _ in range(200):
            if server.open_count == 2:
                break
            await asyncio.sleep(0.02)
        assert server.open_count == 2
        assert (await http_get(server.port))[0] == 200  # a place was given back
        for ws in clients:
            await ws.close()


async def test_connection_rate_per_ip_is_a_token_bucket_with_retry_after() -> None:
    async with tether.serve(echo, HOST, 0, connection_rate=(2, 5), http_handler=hello) as server:
        statuses = [(await http_get(server.port))[0] for _ in range(5)]
        assert statuses == [200] * 5  # the burst
        status, headers = await http_get(server.port)
        assert status == 429
        assert int(headers["retry-after"]) >= 1
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(upgrade_request())
        assert await read_close_code(reader) == 1013
        writer.close()
        await asyncio.sleep(0.6)  # 2 per second refills one token
        assert (await http_get(server.port))[0] == 200
        assert server.metrics.get("tether_connections_refused_total", reason="connection_rate") == 2


async def test_thousands_of_refused_connections_keep_memory_flat() -> None:
    async with tether.serve(echo, HOST, 0, max_connections=1, http_handler=hello) as server:  # noqa: SIM117
        async with tether.connect(f"ws://{HOST}:{server.port}/"):

            async def attempt() -> int:
                return (await http_get(server.port))[0]

            for _ in range(2):  # warm up allocator pools
                await asyncio.gather(*(attempt() for _ in range(100)))
            before = rss()
            statuses: list[int] = []
            for _ in range(40):
                statuses += await asyncio.gather(*(attempt() for _ in range(100)))
            grown = rss() - before
            assert statuses == [503] * 4000
            assert grown < 8 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 4,000 refusals"
            for _ in range(200):
                if not server._refusing:
                    break
                await asyncio.sleep(0.02)
            assert not server._refusing


async def test_a_flood_of_silent_refused_connections_is_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "MAX_REFUSING", 50)
    async with tether.serve(echo, HOST, 0, max_connections=1) as server:  # noqa: SIM117
        async with tether.connect(f"ws://{HOST}:{server.port}/"):
            streams = [await asyncio.open_connection(HOST, server.port) for _ in range(120)]
            await asyncio.sleep(0.1)
            assert len(server._refusing) == 50  # the rest were dropped at once
            dropped = 0
            for reader, writer in streams:
                with contextlib.suppress(asyncio.TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                        dropped += 1
                writer.close()
            assert dropped >= 70


async def test_a_keep_alive_client_that_never_reads_is_not_answered_into_memory() -> None:
    big = b"x" * 262144
    handled = 0

    async def large(request: Request) -> Response:
        nonlocal handled
        handled += 1
        return Response(200, [("Content-Type", "application/octet-stream")], big)

    async with tether.serve(echo, HOST, 0, http_handler=large) as server:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        request = f"GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
        for _ in range(400):  # one at a time: never more than the pipeline allows
            writer.write(request)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.2)
        # The kernel's socket buffers absorb a few MiB; past them the server stops
        # reading and answering instead of buffering 100 MiB of responses.
        assert handled < 100, handled
        protocols = list(server._http)
        assert len(protocols) == 1
        transport = protocols[0].transport
        assert transport is not None
        assert transport.get_write_buffer_size() <= 65536 + len(big) + 4096
        # Once the client reads, it gets every answer, in order.
        received = 0
        while received < 400 * len(big):
            chunk = await asyncio.wait_for(reader.read(2**20), BOUND)
            assert chunk
            received += chunk.count(b"x")
        assert handled == 400
        writer.close()


def test_limits_below_one_are_refused_at_once() -> None:
    with pytest.raises(InvalidOption, match="max_connections"):
        tether.serve(echo, HOST, 0, max_connections=0)
    with pytest.raises(InvalidOption, match="max_connections_per_ip"):
        tether.serve(echo, HOST, 0, max_connections_per_ip=0)
    with pytest.raises(InvalidOption, match="rate"):
        tether.serve(echo, HOST, 0, connection_rate=0)


async def test_message_rate_per_connection_closes_with_1008() -> None:
    async with tether.serve(echo, HOST, 0, message_rate=(10, 10)) as server:
        async with tether.connect(f"ws://{HOST}:{server.port}/") as ws:
            for i in range(50):  # far past the burst of 10, at once
                await ws.send(str(i))
            echoed = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    echoed.append(await asyncio.wait_for(ws.recv(), BOUND))
            assert closed.value.code == 1008
            assert closed.value.reason == "message rate exceeded"
            assert echoed == [str(i) for i in range(len(echoed))]
            assert len(echoed) <= 10
        # Another connection has a bucket of its own.
        async with tether.connect(f"ws://{HOST}:{server.port}/") as ws:
            await ws.send("fresh")
            assert await asyncio.wait_for(ws.recv(), BOUND) == "fresh"
