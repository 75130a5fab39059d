"""Bounded memory whatever the peer sends: compressed floods, ping floods from a peer that
never reads, unterminated HTTP heads, millions of tiny fragments (real sockets, 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import zlib
from typing import Any

import tether

HOST = "127.0.0.1"
BOUND = 30.0


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame (mask of zeros: the payload goes as is)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


async def raw_upgrade(
    port: int, *, deflate: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    key = base64.b64encode(os.urandom(16)).decode()
    ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    assert head.startswith(b"HTTP/1.1 101"), head
    if deflate:
        assert b"permessage-deflate" in head
    return reader, writer


async def send_for(writer: asyncio.StreamWriter, data: bytes, seconds: float) -> None:
    """Write ``data``; stop waiting once the server stops reading (bounded)."""
    writer.write(data)
    try:
        await asyncio.wait_for(writer.drain(), seconds)
    except TimeoutError:
        pass


def inflating(comp: Any, size: int) -> bytes:
    """One compressed message of ``size`` zeros from a compressor kept across messages
    (context takeover, the negotiated default)."""
    data = comp.compress(b"\0" * size) + comp.flush(zlib.Z_SYNC_FLUSH)
    return frame(0x2, data[:-4], rsv1=True)  # RFC 7692 7.2.1: the tail is removed


async def test_compressed_flood_holds_bounded_memory_per_connection() -> None:
    # 20 clients each send 40 messages of ~1 KiB that inflate to 1 MiB to a handler that
    # never reads. Before: max_queue (32) messages each, 32 MiB per connection (640 MiB
    # in all); now at most max_queue_bytes + max_size per connection.
    stuck = asyncio.Event()
    sockets: list[tether.WebSocket] = []

    async def handler(ws: tether.WebSocket) -> None:
        sockets.append(ws)
        await stuck.wait()

    limit = 2**21
    server = await tether.serve(
        handler, HOST, 0, max_queue_bytes=limit, ping_interval=None, close_timeout=0.5
    )
    writers = []
    try:
        before = rss()
        for _ in range(20):
            _, writer = await raw_upgrade(server.port, deflate=True)
            writers.append(writer)
            comp = zlib.compressobj(wbits=-15)
            data = b"".join(inflating(comp, 2**20 - 64) for _ in range(40))
            await send_for(writer, data, 0.1)
        await asyncio.sleep(0.5)
        growth = rss() - before
        assert len(sockets) == 20
        for ws in sockets:
            assert 0 < ws._queued_bytes <= limit + 2**20
            assert len(ws.conn._buf) <= 2**20  # compressed input waits, bounded
        assert growth < 20 * (limit + 2**20) + 64 * 2**20, growth
    finally:
        stuck.set()
        for writer in writers:
            writer.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), BOUND)


async def test_ping_flood_from_a_peer_that_never_reads_stays_bounded() -> None:
    opened: list[tether.WebSocket] = []

    async def handler(ws: tether.WebSocket) -> None:
        opened.append(ws)
        await ws.wait_closed()

    server = await tether.serve(handler, HOST, 0, ping_interval=None, close_timeout=0.5)
    try:
        _, writer = await raw_upgrade(server.port)
        ping = frame(0x9, b"x" * 125)
        for _ in range(10):  # 300,000 pings of 125 bytes, 39 MB; the peer never reads
            await send_for(writer, ping * 30_000, 0.1)
        ws = opened[0]
        buffered = ws.transport.get_write_buffer_size()  # type: ignore[union-attr]
        assert buffered <= ws.write_limit + 2**19, buffered
        assert ws.conn.hold_pongs
        assert ws._reading_paused  # the server stops reading a peer that does not read
        writer.close()
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), BOUND)


async def test_unterminated_header_streamed_fast_gets_431() -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.wait_closed()

    server = await tether.serve(handler, HOST, 0)
    try:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent = 0
        answer = b""
        while sent < 64 * 2**20 and not answer:
            await send_for(writer, b"a" * 4096, 0.2)
            sent += 4096
            try:
                answer = await asyncio.wait_for(reader.read(65536), 0.001)
            except (TimeoutError, ConnectionError):
                pass
        if not answer:
            answer = await asyncio.wait_for(reader.read(65536), BOUND)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
        assert sent <= 16384 + 65536 * 4, sent
        writer.close()
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), BOUND)


async def test_client_rejects_an_unterminated_response_head() -> None:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nX: ")
        try:
            for _ in range(4096):
                writer.write(b"a" * 4096)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    raw = await asyncio.start_server(behave, HOST, 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        try:
            await asyncio.wait_for(tether.connect(f"ws://{HOST}:{port}/"), BOUND)
        except tether.TetherError as exc:
            assert "too large" in str(exc)
        else:
            raise AssertionError("connect() accepted an endless head")
    finally:
        raw.close()
        await raw.wait_closed()


async def test_million_tiny_fragments_bounded_and_others_served() -> None:
    sizes: list[int] = []

    async def handler(ws: tether.WebSocket) -> None:
        async for message in ws:
            sizes.append(len(message))
            await ws.send(message if len(message) < 100 else b"done")

    count = 1_000_000
    server = await tether.serve(handler, HOST, 0, max_size=4 * count, ping_interval=None)
    try:
        _, writer = await raw_upgrade(server.port)
        first = frame(0x2, b"ab", fin=False)
        middle = frame(0x0, b"ab", fin=False) * 10_000
        other = await tether.connect(f"ws://{HOST}:{server.port}/", ping_interval=None)
        before = rss()
        writer.write(first)
        echoes = 0
        for i in range(count // 10_000):
            writer.write(middle)
            await writer.drain()
            if i % 20 == 0:
                await other.send("hi")
                assert await asyncio.wait_for(other.recv(), BOUND) == "hi"
                echoes += 1
        writer.write(frame(0x0, b"ab"))
        await writer.drain()
        for _ in range(400):
            if any(size > 100 for size in sizes):
                break
            await asyncio.sleep(0.05)
        assert 2 * (count + 2) in sizes
        assert echoes == 5
        # Before: one object per fragment (about 150 bytes each: 150 MB here).
        assert rss() - before < 40 * 2**20
        await other.close()
        writer.close()
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), BOUND)


async def test_close_completes_while_the_incoming_queue_is_full() -> None:
    """A client that stopped reading (its queue full, reading paused) and then closes:
    what still comes before the server's close frame is dropped, so the closing
    handshake completes (1000) instead of ending in an abort (1006) at close_timeout."""
    flooding = asyncio.Event()

    async def flood(ws: tether.WebSocket) -> None:
        while True:
            await ws.send("x" * 16384)
            flooding.set()

    async with tether.serve(flood, HOST, 0, close_timeout=3) as server:
        ws = await tether.connect(f"ws://{HOST}:{server.port}/", close_timeout=3, compression=None)
        ws.hold_reading(True)
        await asyncio.wait_for(flooding.wait(), BOUND)
        await asyncio.sleep(0.3)  # the server fills the socket buffers and its own
        ws.hold_reading(False)  # reading resumes, until the queue is full again
        await asyncio.sleep(0.1)
        assert ws._reading_paused
        await ws.close()
        assert ws.close_code == 1000
