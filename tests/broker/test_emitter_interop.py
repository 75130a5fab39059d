"""The official @socket.io/redis-emitter (Node) publishes to a tether Redis cluster.

Nodes: ``b`` hosts ``/chat`` and room ``r1``; ``c`` hosts ``/chat`` with no room; ``d``
hosts only ``/other`` room ``elsewhere``. What each decodes must be exactly what was
emitted, and only where there is interest.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conftest import SHARED_REDIS, redis_up
from tether.broker import Broadcast, RedisBroker, RemoteCommand
from tether.testing.broker import Inbox, wait_until


@pytest.fixture
async def nodes() -> Any:
    if not redis_up():
        pytest.skip("no Redis at 127.0.0.1:6379")
    prefix = f"emit{uuid.uuid4().hex[:10]}"
    made = [RedisBroker(SHARED_REDIS, prefix=prefix, heartbeat_interval=0.3) for _ in range(3)]
    for node in made:
        await node.start()
    yield prefix, made
    for node in made:
        await node.close()


async def test_emitter_messages_decode_exactly(node: Any, nodes: Any) -> None:
    prefix, (b, c, d) = nodes
    inbox_b, inbox_c, inbox_d = Inbox(b), Inbox(c), Inbox(d)
    await b.add_interest("/chat")
    await b.add_interest("/chat", "r1")
    await c.add_interest("/chat")
    await d.add_interest("/other", "elsewhere")

    result = await node.arun("redis_emit.js", SHARED_REDIS, prefix, timeout=30.0)
    assert result.returncode == 0 and result.json() == {"ok": True}, result.describe()
    await inbox_b.wait_for_event("done")

    def summary(messages: list[Broadcast | RemoteCommand]) -> list[Any]:
        out: list[Any] = []
        for m in messages:
            assert m.namespace == "/chat" and m.origin == "emitter", m
            if isinstance(m, Broadcast):
                assert m.packet_type == 2 and m.message_id is None
                out.append((m.event, list(m.args), m.rooms, m.except_rooms, dict(m.flags)))
            else:
                out.append((m.kind, m.rooms, m.except_rooms, m.target_rooms, m.close, m.data))
        return out

    single = (
        "single",
        ["text", 42, 1.5, None, b"\x00\x01\xff", {"nested": [True]}],
        ("r1",),
        (),
        {},
    )
    commands = [
        ("join", ("r1",), (), ("j1", "j2"), False, ()),
        ("leave", (), ("x",), ("l1",), False, ()),
        ("disconnect", ("r2",), (), (), True, ()),
        ("server_side_emit", (), (), (), False, ("sse", 1, "two")),
    ]
    assert summary(inbox_b.messages) == [
        single,
        ("multi", [{"a": 1}], ("r1", "r2"), ("x",), {}),
        ("all", ["x"], (), (), {}),
        ("all-but", [2], (), ("muted",), {}),
        ("vol", [], ("r1",), (), {"volatile": True}),
        *commands,
        ("done", [], ("r1",), (), {}),
    ]
    # c has the namespace but none of the rooms: only the namespace-wide traffic.
    await wait_until(lambda: len(inbox_c.messages) == 6, "c's six messages")
    assert summary(inbox_c.messages) == [
        ("all", ["x"], (), (), {}),
        ("all-but", [2], (), ("muted",), {}),
        *commands,
    ]
    # The multi-room emit came on the namespace channel and c dropped it, counted.
    assert c.stats.irrelevant == 1
    assert c.stats.received_by_kind == {"namespace": 3, "request": 4}
    # b never saw the room it does not host (r9), nor another namespace.
    assert b.stats.received_by_kind == {"room": 3, "namespace": 3, "request": 4}
    assert b.stats.decode_errors == c.stats.decode_errors == 0
    # d hosts nothing the emitter targeted: nothing reached it at all.
    await b.broadcast("/other", ["marker"], rooms=["elsewhere"])
    await inbox_d.wait_for_event("marker")
    assert inbox_d.events() == ["marker"] and d.stats.received == 1
