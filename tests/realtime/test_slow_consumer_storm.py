"""One client that never reads among 500, during a broadcast storm: every other client
gets every event in order, the slow one's outbox stays under its cap, the server's
memory stays flat, and the counters say what happened (real sockets on 127.0.0.1).

The rates and latencies with and without the slow client are printed (``-s``) and
measured side by side in ``bench/slow_consumer.py``; a test asserts no timing."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from typing import Any

import pytest

import tether
from tether.engine import SessionState
from tether.realtime import Hub

from .serving import WAIT, wait_until

CLIENTS = 500
MESSAGES = 200
BODY = "b" * 2048
CAP = 256 * 1024


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def reader(port: int, ready: asyncio.Event, results: list[Any]) -> None:
    ws = await tether.connect(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", compression=None
    )
    assert str(await ws.recv()).startswith("0")
    await ws.send("40")
    assert str(await ws.recv()).startswith("40{")
    ready.set()
    seqs: list[int] = []
    latencies: list[float] = []
    try:
        async with asyncio.timeout(60):
            while len(seqs) < MESSAGES:
                message = str(await ws.recv())
                if message == "2":
                    await ws.send("3")
                elif message.startswith("42"):
                    _, seq, sent, _ = json.loads(message[2:])
                    seqs.append(seq)
                    latencies.append(time.monotonic() - sent)
    finally:
        await ws.close()
    results.append((seqs, latencies))


async def never_reader(port: int) -> socket.socket:
    """A client that connects, joins "/", and then never reads (a tiny receive buffer,
    so its window closes at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock,
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    data = b""
    async with asyncio.timeout(WAIT):
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += await loop.sock_recv(sock, 4096)
    # "40" as a masked client frame (mask of zeros)
    await loop.sock_sendall(sock, b"\x81\x82\x00\x00\x00\x0040")
    return sock


async def storm(hub: Hub, port: int, slow: bool) -> tuple[float, list[float], Any]:
    ready = [asyncio.Event() for _ in range(CLIENTS - 1)]
    results: list[Any] = []
    tasks = [asyncio.ensure_future(reader(port, ready[i], results)) for i in range(CLIENTS - 1)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
    lazy = await never_reader(port) if slow else None
    await wait_until(lambda: len(hub.sockets) == CLIENTS - (0 if slow else 1), 30)
    slow_session = None
    if slow:
        (slow_session,) = (
            s.session
            for s in hub.sockets.values()
            if s.session.remote_address is not None
            and s.session.remote_address[1] == lazy.getsockname()[1]  # type: ignore[union-attr]
        )
        # The server side's send buffer small too: the outbox fills within the storm.
        transport = slow_session.ws.transport  # type: ignore[union-attr]
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peak = 0
    start = time.monotonic()
    for seq in range(MESSAGES):
        await hub.emit("tick", seq, time.monotonic(), BODY)
        if slow_session is not None:
            peak = max(peak, slow_session.outbox.bytes)
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    elapsed = time.monotonic() - start
    for seqs, _ in results:
        assert seqs == list(range(MESSAGES))  # every event, in order, once
    latencies = [x for _, lat in results for x in lat]
    state = slow_session.state if slow_session is not None else None
    if lazy is not None:
        lazy.close()
    return elapsed, latencies, (slow_session, peak, state)


@pytest.mark.parametrize("policy", ["drop_oldest", "disconnect"])
async def test_one_client_that_never_reads_among_500(policy: str) -> None:
    hub = Hub(max_buffered_bytes=CAP, max_buffered_packets=100_000)
    hub.of("/").slow_consumer = policy  # type: ignore[assignment]
    async with hub.serve("127.0.0.1", 0, write_limit=16384) as server:
        base_time, base_lat, _ = await storm(hub, server.port, slow=False)
        await wait_until(lambda: not hub.sockets, 30)
        before = rss()
        slow_time, slow_lat, (session, peak, state) = await storm(hub, server.port, slow=True)
        grown = rss() - before
    deliveries = (CLIENTS - 1) * MESSAGES
    print(
        f"\n{policy}: without the slow client {deliveries / base_time:,.0f} deliveries/s, "
        f"p50 {statistics.median(base_lat) * 1000:.1f} ms; with it "
        f"{deliveries / slow_time:,.0f}/s, p50 {statistics.median(slow_lat) * 1000:.1f} ms; "
        f"its outbox peaked at {peak:,} bytes; RSS {grown / 2**20:+.1f} MiB"
    )
    metrics = hub.metrics
    assert 0 < peak <= CAP
    assert grown < 64 * 2**20
    if policy == "drop_oldest":
        assert metrics.get("tether_outbox_dropped_total", policy="drop_oldest") > 0
        assert metrics.total("tether_slow_consumer_disconnects_total") == 0
        assert state is SessionState.OPEN  # it stayed, behind, through the storm
    else:
        assert state is SessionState.CLOSED
        assert session.closed_reason == "transport error"
        assert metrics.get("tether_slow_consumer_disconnects_total", policy="disconnect") == 1
        assert metrics.total("tether_outbox_dropped_total") == 0
