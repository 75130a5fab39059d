"""Server-side events between nodes and acknowledgements gathered across nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.exceptions import AckTimeout
from tether.realtime import Client

from .cluster_helpers import WAIT, Cluster

pytestmark = pytest.mark.timeout(120)


async def test_server_side_emit_reaches_the_other_nodes(cluster: Cluster) -> None:
    calls: list[tuple[int, tuple[Any, ...]]] = []
    for n, hub in enumerate(cluster.hubs):

        def handler(*args: Any, n: int = n) -> str:
            calls.append((n, args))
            return f"node{n}"

        hub.on_server_event("ping")(handler)
    await cluster.hubs[0].server_side_emit("ping", 1, b"\x02")
    assert sorted(calls) == [(1, (1, b"\x02")), (2, (1, b"\x02"))]  # not node 0 itself
    replies = await cluster.hubs[1].timeout(WAIT).server_side_emit_with_ack("ping", "x")
    assert replies == sorted(
        ["node0", "node2"], key=lambda r: cluster.hubs[int(r[-1])].broker.node_id
    )


async def test_server_side_emit_with_ack_times_out(cluster: Cluster) -> None:
    release = asyncio.Event()

    @cluster.hubs[2].on_server_event("slow")
    async def slow() -> str:
        await release.wait()
        return "late"

    cluster.hubs[1].on_server_event("slow")(lambda: "fast")
    with pytest.raises(AckTimeout) as info:
        await cluster.hubs[0].timeout(0.5).server_side_emit_with_ack("slow")
    release.set()
    assert info.value.responses == ["fast"]  # type: ignore[attr-defined]
    assert info.value.missing_nodes == {cluster.hubs[2].broker.node_id}  # type: ignore[attr-defined]


async def _member(cluster: Cluster, node: int, reply: Any) -> Client:
    client, _ = await cluster.client(node)
    client.on("question", lambda *args: reply if reply != "silent" else _never())
    assert await client.emit_with_ack("join", "q", timeout=WAIT) == "ok"
    return client


def _never() -> Any:
    return asyncio.get_running_loop().create_future()  # an ack that never comes


async def test_emit_with_ack_across_nodes(cluster: Cluster) -> None:
    for n in range(3):
        await _member(cluster, n, f"a{n}")
    await cluster.client(1)  # not in "q"
    answers = await cluster.hubs[0].timeout(WAIT).to("q").emit_with_ack("question", 1)
    assert sorted(answers) == ["a0", "a1", "a2"]
    local = await cluster.hubs[0].local.timeout(WAIT).to("q").emit_with_ack("question", 2)
    assert local == ["a0"]


async def test_emit_with_ack_missing_answers(cluster: Cluster) -> None:
    await _member(cluster, 0, "yes")
    await _member(cluster, 1, "silent")
    await _member(cluster, 2, "yes")
    with pytest.raises(AckTimeout) as info:
        await cluster.hubs[1].timeout(0.5).to("q").emit_with_ack("question")
    assert info.value.responses == ["yes", "yes"]  # type: ignore[attr-defined]
    assert info.value.missing == 1  # type: ignore[attr-defined]
