"""``Hub.drain``: new handshakes refused, open sessions closed at a spread-out pace, the
clients reconnecting by themselves through a load balancer to the other node, and no
acknowledged event lost.

The load balancer is a small failover proxy of the test's own (asyncio streams on
127.0.0.1): for each TCP connection it reads the request head and tries the backends in
order, skipping one that refuses the connection or answers 503, as a proxy with
"next upstream on 503" does. Node A is first, so every client starts on A.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import signal
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from tests.e2e.test_demo_cli import Proc, fetch

import tether
from tether.broker import MemoryBroker, MemoryCluster
from tether.exceptions import InvalidOption, InvalidState, InvalidStatus
from tether.realtime import Client, Hub
from tether.realtime.drain import readiness

from .serving import wait_until
from .test_hub_interop import SioClient

if TYPE_CHECKING:
    from tests.conftest import Node

HOST = "127.0.0.1"
WAIT = 30.0


# ------------------------------------------------------------------ the load balancer


class FailoverProxy:
    """A TCP proxy that sends each connection to the first backend that takes it."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.skipped = collections.Counter[int]()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self) -> FailoverProxy:
        self.server = await asyncio.start_server(self._serve, HOST, 0, backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            for port in self.backends:
                try:
                    b_reader, b_writer = await asyncio.open_connection(HOST, port)
                except OSError:
                    self.skipped[port] += 1
                    continue
                b_writer.write(head)
                try:
                    answer = await asyncio.wait_for(b_reader.readuntil(b"\r\n\r\n"), WAIT)
                except (asyncio.IncompleteReadError, ConnectionError):
                    b_writer.close()
                    self.skipped[port] += 1
                    continue
                if answer.split(b" ", 2)[1] == b"503":
                    b_writer.close()
                    self.skipped[port] += 1
                    continue
                writer.write(answer)
                await asyncio.gather(_pipe(reader, b_writer), _pipe(b_reader, writer))
                return
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except TimeoutError:
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()


# ------------------------------------------------------------------ the cluster


class Ledger:
    """The application's record: which (client, seq) each node handled, how often."""

    def __init__(self) -> None:
        self.handled = collections.Counter[tuple[str, int]]()
        self.where: dict[str, str] = {}
        self.connects: dict[str, list[float]] = {"A": [], "B": []}


def make_hub(name: str, broker: MemoryBroker, ledger: Ledger) -> Hub:
    hub = Hub(broker=broker, ping_interval=5, ping_timeout=5)
    loop = asyncio.get_running_loop()

    @hub.on_connect()
    def connected(socket: Any, auth: Any) -> None:
        ledger.connects[name].append(loop.time())

    @hub.on("work")
    async def work(socket: Any, cid: str, seq: int) -> str:
        await asyncio.sleep(random.uniform(0, 0.02))  # a handler that takes a little while
        ledger.handled[(cid, seq)] += 1
        ledger.where[cid] = name
        return "ok"

    return hub


class RawClient:
    """A light Socket.IO client over a raw WebSocket (text packets): emits ``work`` with
    an ack, one at a time, and after a transport close reconnects after 0.1 to 0.3 s
    (little jitter, on purpose: the spread measured at B is then the drain's, not the
    clients') and sends the unacknowledged emit again (at-least-once, as ``retries``
    does)."""

    def __init__(self, cid: str, port: int) -> None:
        self.cid = cid
        self.url = f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket"
        self.seq = 0
        self.acked: list[int] = []
        self.closes = 0
        self.reconnects = 0
        self.stop = False
        self.connected = asyncio.Event()

    async def run(self, pause: float) -> None:
        while not self.stop:
            try:
                ws = await tether.connect(self.url, compression=None, open_timeout=WAIT)
            except (OSError, InvalidStatus, tether.ConnectionClosed, TimeoutError):
                await asyncio.sleep(random.uniform(0.5, 1.5))
                continue
            try:
                await self._session(ws, pause)
            except tether.ConnectionClosed:
                pass
            finally:
                self.connected.clear()
                with contextlib.suppress(tether.ConnectionClosed):
                    await ws.close()
            if self.stop:
                return
            self.closes += 1
            await asyncio.sleep(random.uniform(0.1, 0.3))
            self.reconnects += 1

    async def _recv(self, ws: Any) -> str:
        while True:
            message = str(await ws.recv())
            if message == "2":
                await ws.send("3")
                continue
            return message

    async def _session(self, ws: Any, pause: float) -> None:
        assert (await self._recv(ws)).startswith("0")
        await ws.send("40")
        assert (await self._recv(ws)).startswith("40")
        self.connected.set()
        ack_id = 0
        while not self.stop:
            if not self.acked or self.acked[-1] != self.seq:
                # The emit without an ack yet (new, or again after a reconnection).
                ack_id += 1
                await ws.send(f'42{ack_id}["work",{json.dumps(self.cid)},{self.seq}]')
                while await self._recv(ws) != f'43{ack_id}["ok"]':
                    pass
                self.acked.append(self.seq)
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            self.seq += 1


@pytest.mark.parametrize("n", [2000])
async def test_drain_moves_2000_clients_to_the_other_node_spread_out(n: int, node: Node) -> None:
    ledger = Ledger()
    cluster = MemoryCluster()
    hub_a = make_hub("A", MemoryBroker(cluster=cluster), ledger)
    hub_b = make_hub("B", MemoryBroker(cluster=cluster), ledger)
    server_a = await hub_a.serve(HOST, 0, backlog=4096)
    server_b = await hub_b.serve(HOST, 0, backlog=4096)
    proxy = await FailoverProxy([server_a.port, server_b.port]).start()
    raw = [RawClient(f"raw-{i}", proxy.port) for i in range(n)]
    tasks: list[asyncio.Task[Any]] = []
    py_clients = [
        Client(retries=20, ack_timeout=5, reconnection_delay=0.5, reconnection_delay_max=2)
        for _ in range(3)
    ]
    py_acked: list[list[int]] = [[] for _ in py_clients]
    py_disconnects: list[list[str]] = [[] for _ in py_clients]
    sio: SioClient | None = None
    try:
        # Connect in waves so the accept queue is not the test's subject.
        for start in range(0, n, 200):
            for client in raw[start : start + 200]:
                tasks.append(asyncio.create_task(client.run(pause=1.0)))
            async with asyncio.timeout(WAIT):
                await asyncio.gather(*(c.connected.wait() for c in raw[start : start + 200]))
        for i, client in enumerate(py_clients):
            client.on("disconnect", py_disconnects[i].append)
            await client.connect(f"http://{HOST}:{proxy.port}", transports=["websocket"])

        async def py_emits(i: int) -> None:
            seq = 0
            while True:
                assert await py_clients[i].emit_with_ack("work", f"py-{i}", seq) == "ok"
                py_acked[i].append(seq)
                seq += 1
                await asyncio.sleep(0.05)

        py_tasks = [asyncio.create_task(py_emits(i)) for i in range(len(py_clients))]
        tasks += py_tasks
        sio = await SioClient.start(
            node,
            f"http://{HOST}:{proxy.port}",
            {"transports": ["websocket"], "reconnectionDelay": 500, "timeout": 60_000},
        )
        await sio.wait("connect")
        assert await sio.emit_ack("work", "node-0", 0) == ["ok"]
        total = n + len(py_clients) + 1
        assert len(hub_a.engine.sessions) == total
        assert not hub_b.engine.sessions
        b_connects_before = len(ledger.connects["B"])
        acked_before = sum(len(c.acked) for c in raw)

        result = await hub_a.drain(period=4.0, grace=3.0, handler_timeout=5.0)

        assert result.sessions == total
        assert result.closed == total
        assert result.remaining == 0
        assert hub_a.metrics.get("tether_drain_closed_total") == total
        assert hub_a.metrics.get("tether_draining") == 1
        # While draining, a handshake straight at A is refused (503, Retry-After).
        with pytest.raises(InvalidStatus) as refused:
            await tether.connect(
                f"ws://{HOST}:{server_a.port}/socket.io/?EIO=4&transport=websocket"
            )
        assert refused.value.status == 503
        assert ("Retry-After", "5") in refused.value.headers

        def poll_a() -> int:
            url = f"http://{HOST}:{server_a.port}/socket.io/?EIO=4&transport=polling"
            try:
                urllib.request.urlopen(url, timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.headers["Retry-After"] == "5"
                return exc.code
            return 200

        assert await asyncio.to_thread(poll_a) == 503
        assert hub_a.metrics.get("tether_drain_refused_total", transport="polling") >= 1

        # Every client ends on B, by itself.
        await wait_until(lambda: len(hub_b.engine.sessions) == total, WAIT)
        await wait_until(lambda: all(c.connected.is_set() for c in raw), WAIT)
        await sio.wait("connect", 2)
        assert [d["reason"] for d in sio.events("disconnect")] == ["transport close"]
        assert await sio.emit_ack("work", "node-0", 1) == ["ok"]
        assert ledger.where["node-0"] == "B"
        # tether's client names the loss "transport error" when its own write hit the
        # closed socket first: either way a transport loss, which it reconnects after.
        for reasons in py_disconnects:
            assert len(reasons) == 1 and reasons[0] in ("transport close", "transport error")
        assert all(c.closes == 1 for c in raw)
        acked_mark = [len(a) for a in py_acked]
        await wait_until(
            lambda: all(len(a) > m + 2 for a, m in zip(py_acked, acked_mark, strict=True)), WAIT
        )
        assert all(ledger.where[f"py-{i}"] == "B" for i in range(len(py_clients)))

        # Spread out: the reconnections reached B in many small buckets, not one spike.
        times = ledger.connects["B"][b_connects_before:]
        assert len(times) == total
        buckets = collections.Counter(int((t - times[0]) / 0.1) for t in times)
        peak = max(buckets.values())
        print(f"\nB handshakes: {len(times)} in {len(buckets)} buckets of 100 ms, peak {peak}")
        # (4 s of drain: about 50 per bucket, with room for a busy loop handling them in
        # clumps; closing all at once gives several hundred in one bucket.)
        assert peak < total / 5

        # No acknowledged event lost: each one the clients got an ack for was handled
        # exactly once (the drain lets running handlers finish before it closes, and
        # events it did not read are handled only once they come again at B).
        for client in raw:
            client.stop = True
        for task in py_tasks:
            task.cancel()
        acked = [(c.cid, s) for c in raw for s in c.acked]
        acked += [(f"py-{i}", s) for i, a in enumerate(py_acked) for s in a]
        assert sum(len(c.acked) for c in raw) > acked_before
        missing = [key for key in acked if ledger.handled[key] == 0]
        twice = [key for key in acked if ledger.handled[key] > 1]
        print(f"acked {len(acked)} events; lost {len(missing)}; handled twice {len(twice)}")
        assert not missing
        assert not twice
        with open("/proc/self/status") as status:
            print(*(line.strip() for line in status if line.startswith(("VmRSS", "VmHWM"))))
    finally:
        for client in raw:
            client.stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in py_clients:
            await client.disconnect()
        if sio is not None:
            await sio.close()
        await proxy.close()
        for hub in (hub_a, hub_b):
            await asyncio.wait_for(hub.close(), WAIT)


async def test_drain_options_and_twice() -> None:
    hub = Hub()
    with pytest.raises(InvalidOption, match="period"):
        await hub.drain(period=-1)
    with pytest.raises(InvalidOption, match="grace"):
        await hub.drain(grace=float("nan"))
    assert not hub.draining
    hub.engine.fallback = readiness(hub, hub.engine.fallback)
    async with hub.serve(HOST, 0) as server:
        health = f"http://{HOST}:{server.port}/health"
        assert (await fetch(health))[0] == 200
        first = asyncio.create_task(hub.drain(period=0, grace=0))
        await asyncio.sleep(0)
        assert hub.draining
        with pytest.raises(InvalidState):
            await hub.drain()
        result = await first
        assert result.sessions == 0 and result.remaining == 0
        status, headers, body = await fetch(health)  # the load balancer's readiness check
        assert (status, headers["Retry-After"], body) == (503, "5", b"draining\n")
        assert (await fetch(f"http://{HOST}:{server.port}/other"))[0] == 404


async def test_cli_demo_drains_on_sigterm() -> None:
    proc = await Proc.start("demo", "--host", HOST, "--port", "0", "--drain-period", "2")
    client = Client(reconnection=False)
    reasons: list[str] = []
    client.on("disconnect", reasons.append)
    try:
        line = await proc.line()
        port = int(line.rsplit(":", 1)[1])
        assert (await fetch(f"http://{HOST}:{port}/health"))[0] == 200
        await client.connect(f"http://{HOST}:{port}", transports=["websocket"])
        proc.proc.send_signal(signal.SIGTERM)
        assert await proc.line() == "draining over 2s"
        assert await proc.line() == "drained: 1 client(s) moved, 0 left"
        assert await asyncio.wait_for(proc.proc.wait(), WAIT) == 0
        await wait_until(lambda: bool(reasons), WAIT)
        # A transport loss, after which clients reconnect (not "io server disconnect").
        assert reasons == ["transport close"]
    finally:
        await client.disconnect()
        await proc.terminate()
