"""Connection-state recovery across nodes: a node is killed with SIGKILL and its clients
recover on another node, through a real nginx doing plain round robin.

Three ``hub_reference_server.py --redis --recovery`` children behind nginx (the
configuration of ``examples/nginx/nginx.conf``), and a hub in this process on the same
Redis prefix that broadcasts (it serves nobody). A client (tether's, or the official Node
``socket.io-client``) on WebSocket connects through nginx, joins a room and sets data;
its node is killed with ``kill -9``; broadcasts go out while it is away; it reconnects
through nginx (which skips the dead node) to another node and gets the same sid, its
rooms, its data and every broadcast it missed, in order, once. Repeated disconnects
without new broadcasts replay nothing twice; a client that comes back too late, or after
Redis lost its data, is told it did not recover.

Every process is stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nginx_proxy import NGINX, nginx
from tether.broker import RedisBroker
from tether.realtime import Client, Hub, Recovery
from tether.testing.broker import wait_until_async

from .cluster_helpers import FAST, REDIS, WAIT
from .conftest import ServerProcess
from .test_hub_interop import SioClient

if TYPE_CHECKING:
    from tests.conftest import Node

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(NGINX is None, reason="nginx is installed by make test"),
]

DURATION = 8.0  # max_disconnection_duration of the nodes


class Nodes:
    """Three hub processes behind nginx, plus a hub here that broadcasts."""

    def __init__(self, children: list[ServerProcess], hub: Hub, port: int) -> None:
        self.children = children
        self.hub = hub
        self.url = f"http://127.0.0.1:{port}"

    def kill(self, pid: int) -> None:
        child = next(c for c in self.children if c.pid == pid)
        os.kill(child.pid, signal.SIGKILL)
        child.proc.wait(10)


@contextlib.asynccontextmanager
async def three_nodes(
    hub_server: Callable[..., ServerProcess],
    tmp: Path,
    redis: str = REDIS,
    duration: float = DURATION,
) -> AsyncIterator[Nodes]:
    prefix = f"tether-recover-{uuid.uuid4().hex[:8]}"
    args = ["--redis", redis, "--prefix", prefix, "--recovery"]
    args += ["--recovery-duration", str(duration)]
    children = [hub_server(*args) for _ in range(3)]
    recovery = Recovery(max_disconnection_duration=duration)
    hub = Hub(broker=RedisBroker(redis, prefix=prefix, **FAST), recovery=recovery)  # type: ignore[arg-type]
    try:
        with nginx(tmp, [child.port for child in children]) as port:
            nodes = Nodes(children, hub, port)

            async def all_live() -> int:
                return len(await hub.broker.live_nodes())

            await wait_until_async(all_live, 4)
            yield nodes
    finally:
        await hub.close()
        await hub.broker.close()
        for child in children:
            child.stop()


class TetherPeer:
    """tether's client, on WebSocket, reconnecting fast, recording what it gets."""

    def __init__(self, delay: float = 0.1) -> None:
        self.client = Client(reconnection_delay=delay, reconnection_delay_max=delay * 2)
        self.events: list[tuple[str, Any]] = []
        self.connects = 0
        self._changed = asyncio.Event()

        def on_any(event: str, *args: Any) -> None:
            self.events.append((event, args[0] if args else None))
            self._changed.set()

        def on_connect() -> None:
            self.connects += 1
            self._changed.set()

        self.client.on("*", on_any)
        self.client.on("connect", on_connect)

    async def start(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"])

    async def wait(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{what}: got {self.events}") from None

    async def call(self, event: str, *args: Any) -> Any:
        return await self.client.emit_with_ack(event, *args, timeout=WAIT)

    async def send(self, event: str, *args: Any) -> None:
        await self.client.emit(event, *args)

    def named(self, name: str) -> list[Any]:
        return [value for event, value in self.events if event == name]

    @property
    def recovered(self) -> bool:
        return self.client.recovered

    async def close(self) -> None:
        await self.client.disconnect()


class NodePeer:
    """The official ``socket.io-client`` (sio_client.js), the same interface."""

    def __init__(self, js: SioClient) -> None:
        self.js = js

    @classmethod
    async def start(cls, node: Node, url: str) -> NodePeer:
        options = {
            "transports": ["websocket"],
            "reconnectionDelay": 100,
            "reconnectionDelayMax": 200,
            "timeout": int(WAIT * 1000) + 30_000,
        }
        js = await SioClient.start(node, f"{url}/", options)
        await js.wait("connect")
        return cls(js)

    @property
    def connects(self) -> int:
        return len(self.js.events("connect"))

    async def wait(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not predicate():
                    self.js._changed.clear()
                    await self.js._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{what}\n{self.js.describe()}") from None

    async def call(self, event: str, *args: Any) -> Any:
        value = await self.js.emit_ack(event, *args)
        return value[0] if value else None

    async def send(self, event: str, *args: Any) -> None:
        await self.js.emit(event, *args)

    def named(self, name: str) -> list[Any]:
        return [args[0] for args in self.js.received(name)]

    @property
    def recovered(self) -> bool:
        return bool(self.js.events("connect")[-1]["recovered"])

    async def close(self) -> None:
        await self.js.close()


@pytest.mark.parametrize("peer_kind", ["tether", "official"])
async def test_client_of_a_killed_node_recovers_on_another(
    hub_server: Callable[..., ServerProcess], tmp_path: Path, node: Node, peer_kind: str
) -> None:
    async with three_nodes(hub_server, tmp_path) as nodes:
        hub = nodes.hub
        peer: TetherPeer | NodePeer
        if peer_kind == "tether":
            peer = TetherPeer()
            await peer.start(nodes.url)
        else:
            peer = await NodePeer.start(node, nodes.url)
        try:
            assert await peer.call("join", "red") == "ok"
            assert await peer.call("set-data", "name", "kept") == "ok"
            before = await peer.call("info")
            assert before["recovered"] is False

            await hub.to("red").emit("news", 1)
            await hub.emit("all", "a")
            await peer.wait(lambda: peer.named("all") == ["a"], "the first broadcasts")

            nodes.kill(before["pid"])
            # While the client is away (its node is dead, nobody holds it): missed.
            await hub.to("red").emit("news", 2)
            await hub.to("blue").emit("news", 99)  # not its room: not replayed
            await hub.except_("red").emit("all", "not-for-red")  # excluded
            await hub.emit("all", "b")
            await hub.to("red").emit("news", 3)

            await peer.wait(lambda: peer.connects >= 2, "reconnected")
            after = await peer.call("info")
            assert after["pid"] != before["pid"]  # another node
            assert after["recovered"] is True and peer.recovered
            assert after["id"] == before["id"]
            assert after["data"] == {"name": "kept"}
            await peer.wait(lambda: 3 in peer.named("news"), "the missed broadcasts")
            # The room is back: a broadcast to it arrives.
            await hub.to("red").emit("news", 4)
            await peer.wait(lambda: 4 in peer.named("news"), "a broadcast after recovery")
            assert peer.named("news") == [1, 2, 3, 4]
            assert peer.named("all") == ["a", "b"]

            # A disconnect without new broadcasts replays nothing (twice or at all).
            await peer.send("close-engine")
            await peer.wait(lambda: peer.connects >= 3, "reconnected again")
            again = await peer.call("info")
            assert again["recovered"] is True and again["id"] == before["id"]
            await hub.to("red").emit("news", 5)
            await peer.wait(lambda: 5 in peer.named("news"), "a broadcast after the second")
            assert peer.named("news") == [1, 2, 3, 4, 5]
            assert peer.named("all") == ["a", "b"]
        finally:
            await peer.close()


async def test_client_back_too_late_does_not_recover(
    hub_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    duration = 2.0
    async with three_nodes(hub_server, tmp_path, duration=duration) as nodes:
        hub = nodes.hub
        peer = TetherPeer(delay=duration * 3)  # comes back long after the session expired
        peer.client.backoff.randomization_factor = 0.0
        await peer.start(nodes.url)
        try:
            assert await peer.call("join", "red") == "ok"
            before = await peer.call("info")
            await hub.to("red").emit("news", 1)
            await peer.wait(lambda: peer.named("news") == [1], "the first broadcast")
            nodes.kill(before["pid"])
            await hub.to("red").emit("news", 2)
            await peer.wait(lambda: peer.connects >= 2, "reconnected")
            after = await peer.call("info")
            assert after["recovered"] is False and not peer.recovered
            assert after["id"] != before["id"]
            assert after["data"] == {}
            await hub.to("red").emit("news", 3)  # not in the room any more
            await hub.emit("marker")
            await peer.wait(lambda: bool(peer.named("marker")), "the marker")
            assert peer.named("news") == [1]
        finally:
            await peer.close()


def nginx_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_node_restarted_with_its_id_recovers_its_own_clients(
    hub_server: Callable[..., ServerProcess],
) -> None:
    # One node with a fixed id, killed and started again on the same port with the same
    # id: the records it left say "connected on this node", but no socket of the new
    # process holds them, so its clients recover there.
    prefix = f"tether-restart-{uuid.uuid4().hex[:8]}"
    args = ["--redis", REDIS, "--prefix", prefix, "--node-id", "fixed-node", "--recovery"]
    first = hub_server(*args)
    port = first.port
    hub = Hub(broker=RedisBroker(REDIS, prefix=prefix, **FAST), recovery=Recovery())  # type: ignore[arg-type]
    peer = TetherPeer(delay=0.3)
    try:
        await peer.start(f"http://127.0.0.1:{port}")
        assert await peer.call("join", "red") == "ok"
        before = await peer.call("info")
        await hub.to("red").emit("news", 1)
        await peer.wait(lambda: peer.named("news") == [1], "the first broadcast")
        os.kill(first.pid, signal.SIGKILL)
        first.proc.wait(10)
        await hub.to("red").emit("news", 2)
        hub_server(*args, "--port", port)  # the same node, back on its port
        await peer.wait(lambda: peer.connects >= 2, "reconnected")
        after = await peer.call("info")
        assert after["pid"] != before["pid"]
        assert after["recovered"] is True and after["id"] == before["id"]
        await peer.wait(lambda: peer.named("news") == [1, 2], "the missed broadcast")
    finally:
        await peer.close()
        await hub.close()
        await hub.broker.close()


@contextlib.contextmanager
def own_redis(port: int) -> Iterator[Callable[[], None]]:
    """A redis-server of this test's own (nothing on disk); yields a restart function
    (Redis comes back empty: its data is lost)."""
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    argv += ["--appendonly", "no"]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL)]

    def wait_up() -> None:
        for _ in range(200):
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), 0.1).close()
                return
            import time

            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def restart() -> None:
        procs[-1].kill()
        procs[-1].wait(10)
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        wait_up()

    wait_up()
    try:
        yield restart
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


async def test_redis_lost_its_data_client_does_not_recover(
    hub_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    port = nginx_free_port()
    with own_redis(port) as restart:
        redis = f"redis://127.0.0.1:{port}/0"
        async with three_nodes(hub_server, tmp_path, redis=redis) as nodes:
            hub = nodes.hub
            peer = TetherPeer(delay=1.5)
            peer.client.backoff.randomization_factor = 0.0
            await peer.start(nodes.url)
            try:
                assert await peer.call("join", "red") == "ok"
                before = await peer.call("info")
                await hub.to("red").emit("news", 1)
                await peer.wait(lambda: peer.named("news") == [1], "the first broadcast")
                nodes.kill(before["pid"])
                restart()  # Redis comes back empty before the client does
                await peer.wait(lambda: peer.connects >= 2, "reconnected")
                after = await peer.call("info")
                assert after["recovered"] is False and after["id"] != before["id"]
            finally:
                await peer.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
