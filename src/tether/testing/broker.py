"""A conformance suite for :class:`~tether.broker.cluster.ClusterBroker` implementations.

Every check is an ``async def check_*(make_node)`` function; ``make_node(**options)`` must
return a started broker that belongs to the same cluster as the others made by the same
factory (the same Redis and prefix, the same :class:`~tether.broker.memory.MemoryCluster`),
and the caller closes them afterwards. ``CHECKS`` maps names to checks, for
parametrizing::

    @pytest.mark.parametrize("name", sorted(CHECKS))
    async def test_conformance(name, make_node):
        await CHECKS[name](make_node)

The checks wait with bounds (``WAIT`` seconds) and never sleep to synchronise: to show
that a node received *nothing*, they send it a marker afterwards on a channel it does
listen to, and count what arrived before the marker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..broker import Broadcast, ClusterBroker, NodeRequest, RemoteCommand
from ..broker.base import Envelope

__all__ = [
    "CHECKS",
    "WAIT",
    "Inbox",
    "NodeFactory",
    "check_broadcast_fields",
    "check_concurrent_requests_bounded",
    "check_interest_batching",
    "check_interest_refcount",
    "check_leave_before_confirmation",
    "check_live_nodes",
    "check_multi_room_dedup",
    "check_namespace_broadcast",
    "check_no_own_broadcast",
    "check_pending_requests_bounded",
    "check_plain_publish_subscribe",
    "check_queue_overflow_is_counted",
    "check_remove_unknown_interest",
    "check_request_all_nodes",
    "check_request_errors",
    "check_request_node_dies",
    "check_request_timeout",
    "check_room_interest_routing",
    "check_slow_handler_isolation",
    "check_state",
    "wait_until",
    "wait_until_async",
]

WAIT = 10.0
"""Upper bound, in seconds, of every wait of the suite."""

NodeFactory = Callable[..., Awaitable[ClusterBroker]]


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds.

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Inbox:
    """Collects what a node's ``on_message`` handler receives."""

    def __init__(self, node: ClusterBroker) -> None:
        self.node = node
        self.messages: list[Broadcast | RemoteCommand] = []
        node.set_handlers(on_message=self.messages.append)

    @property
    def broadcasts(self) -> list[Broadcast]:
        """The broadcasts received so far."""
        return [m for m in self.messages if isinstance(m, Broadcast)]

    def events(self) -> list[str | None]:
        """The event names of the broadcasts received so far."""
        return [m.event for m in self.broadcasts]

    async def wait_for_event(self, event: str, timeout: float = WAIT) -> Broadcast:
        """Wait for a broadcast of ``event`` and return it.

        Raises:
            AssertionError: none came within ``timeout`` seconds.
        """
        await wait_until(lambda: event in self.events(), f"{event!r} at {self.node.node_id}")
        return next(m for m in self.broadcasts if m.event == event)


async def _marker(sender: ClusterBroker, inbox: Inbox, ns: str, room: str) -> None:
    """Send a marker to ``room`` and wait for it: what was sent before has arrived."""
    await sender.broadcast(ns, ["marker"], rooms=[room])
    await inbox.wait_for_event("marker")


async def check_state(make_node: NodeFactory) -> None:
    """A started broker is connected; a closed one is closed and refuses work."""
    a = await make_node()
    states = [a.state]
    await a.close()
    states.append(a.state)
    assert states == ["connected", "closed"], states
    try:
        await a.broadcast("/", ["x"])
    except Exception as exc:
        assert type(exc).__name__ == "InvalidState", exc
    else:
        raise AssertionError("a closed broker accepted a broadcast")


async def check_live_nodes(make_node: NodeFactory) -> None:
    """Every node sees every node; a node closed cleanly is gone at once."""
    a, b = await make_node(), await make_node()
    both = sorted([a.node_id, b.node_id])
    await wait_until_async(lambda: a.live_nodes(), both)
    await wait_until_async(lambda: b.live_nodes(), both)
    await b.close()
    assert await a.live_nodes() == [a.node_id]


async def wait_until_async(
    get: Callable[[], Awaitable[Any]], expected: Any, timeout: float = WAIT
) -> None:
    """Call ``get`` until it returns ``expected``.

    Raises:
        AssertionError: it did not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while (value := await get()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"got {value!r}, expected {expected!r}")
        await asyncio.sleep(0.01)


async def check_room_interest_routing(make_node: NodeFactory) -> None:
    """A room broadcast reaches the nodes with interest in the room, and no other."""
    a, b, c = await make_node(), await make_node(), await make_node()
    inbox_b, inbox_c = Inbox(b), Inbox(c)
    assert await b.add_interest("/", "r1")
    assert await c.add_interest("/", "r2")
    await a.broadcast("/", ["hello", 1], rooms=["r1"])
    await inbox_b.wait_for_event("hello")
    await _marker(a, inbox_c, "/", "r2")
    assert inbox_c.events() == ["marker"], inbox_c.events()
    assert c.stats.received == 1, c.stats  # the r1 message never reached c
    assert a.stats.received == 0, a.stats
    assert b.stats.irrelevant == c.stats.irrelevant == 0


async def check_interest_refcount(make_node: NodeFactory) -> None:
    """Interest is counted: the last ``remove_interest`` stops the traffic."""
    a, b = await make_node(), await make_node()
    inbox = Inbox(b)
    await b.add_interest("/", "r")
    await b.add_interest("/", "r")
    await b.add_interest("/", "other")
    await b.remove_interest("/", "r")
    assert b.has_interest("/", "r")
    await a.broadcast("/", ["one"], rooms=["r"])
    await inbox.wait_for_event("one")
    await b.remove_interest("/", "r")
    assert not b.has_interest("/", "r")
    # The UNSUBSCRIBE is in flight; a round trip on the same connection settles it.
    await b.add_interest("/", "settle")
    await b.remove_interest("/", "settle")
    await a.broadcast("/", ["two"], rooms=["r"])
    await _marker(a, inbox, "/", "other")
    assert inbox.events() == ["one", "marker"], inbox.events()


async def check_leave_before_confirmation(make_node: NodeFactory) -> None:
    """A room left while its SUBSCRIBE is in flight ends up unsubscribed."""
    a, b = await make_node(), await make_node()
    inbox = Inbox(b)
    await b.add_interest("/", "other")
    before = b.stats.subscribe_commands
    joining = asyncio.ensure_future(b.add_interest("/", "r"))
    # Yield only until the SUBSCRIBE is sent, so the confirmation is (most likely) still
    # on its way when the member leaves.
    for _ in range(100_000):
        if b.stats.subscribe_commands > before:
            break
        await asyncio.sleep(0)
    else:
        raise AssertionError("the SUBSCRIBE was never sent")
    await b.remove_interest("/", "r")
    await asyncio.wait_for(joining, WAIT)
    # A round trip on the same connection: what was scheduled before it is done.
    await b.add_interest("/", "settle")
    await b.remove_interest("/", "settle")
    await a.broadcast("/", ["lost"], rooms=["r"])
    await _marker(a, inbox, "/", "other")
    assert inbox.events() == ["marker"], inbox.events()
    assert b.stats.irrelevant == 0, b.stats


async def check_interest_batching(make_node: NodeFactory) -> None:
    """Joins made in one loop turn are one subscribe batch (one command, except on a
    Redis Cluster: one per hash slot)."""
    a, b = await make_node(), await make_node()
    inbox = Inbox(b)
    before = b.stats.subscribe_batches
    rooms = [f"room-{i}" for i in range(50)]
    confirmed = await asyncio.gather(*(b.add_interest("/chat", room) for room in rooms))
    assert all(confirmed)
    assert b.stats.subscribe_batches - before == 1, b.stats.subscribe_batches - before
    await a.broadcast("/chat", ["last"], rooms=[rooms[-1]])
    await inbox.wait_for_event("last")


async def check_multi_room_dedup(make_node: NodeFactory) -> None:
    """A broadcast to several rooms reaches a node hosting two of them once."""
    a, b = await make_node(), await make_node()
    inbox = Inbox(b)
    await b.add_interest("/", "r1")
    await b.add_interest("/", "r2")
    message_id = await a.broadcast("/", ["multi"], rooms=["r1", "r2", "r3"], except_rooms=["x"])
    got = await inbox.wait_for_event("multi")
    await _marker(a, inbox, "/", "r1")
    assert inbox.events() == ["multi", "marker"], inbox.events()
    assert got.message_id == message_id
    assert got.rooms == ("r1", "r2", "r3") and got.except_rooms == ("x",)
    assert b.stats.duplicates == 1, b.stats


async def check_namespace_broadcast(make_node: NodeFactory) -> None:
    """A broadcast without rooms reaches the nodes with interest in the namespace."""
    a, b, c = await make_node(), await make_node(), await make_node()
    inbox_b, inbox_c = Inbox(b), Inbox(c)
    await b.add_interest("/chat")
    await c.add_interest("/other")
    await a.broadcast("/chat", ["all"], except_rooms=["muted"])
    got = await inbox_b.wait_for_event("all")
    assert got.rooms == () and got.except_rooms == ("muted",)
    await c.add_interest("/other", "r")
    await _marker(a, inbox_c, "/other", "r")
    assert inbox_c.events() == ["marker"]


async def check_broadcast_fields(make_node: NodeFactory) -> None:
    """Event, args (bytes included), rooms, except, flags and origin arrive as sent."""
    a, b = await make_node(), await make_node()
    inbox = Inbox(b)
    await b.add_interest("/ns", "r")
    args = ["text", 42, 1.5, None, True, b"\x00\xffbin", {"k": [1, b"x"]}]
    await a.broadcast(
        "/ns", ["ev", *args], rooms=["r"], except_rooms=["e1", "e2"], flags={"volatile": True}
    )
    got = await inbox.wait_for_event("ev")
    assert got.namespace == "/ns"
    assert got.event == "ev" and list(got.args) == args, got
    assert got.rooms == ("r",) and got.except_rooms == ("e1", "e2")
    assert dict(got.flags) == {"volatile": True}
    assert got.origin == a.node_id and got.message_id


async def check_no_own_broadcast(make_node: NodeFactory) -> None:
    """A node never hands its own broadcasts to its handler (it delivers them locally)."""
    a, b = await make_node(), await make_node()
    inbox_a, inbox_b = Inbox(a), Inbox(b)
    await a.add_interest("/", "r")
    await b.add_interest("/", "r")
    await a.broadcast("/", ["mine"], rooms=["r"])
    await inbox_b.wait_for_event("mine")
    await _marker(b, inbox_a, "/", "r")
    assert inbox_a.events() == ["marker"]
    await wait_until(lambda: a.stats.own == 1, "own message counted")


async def check_remove_unknown_interest(make_node: NodeFactory) -> None:
    """Removing an interest that was never declared is a ValueError."""
    a = await make_node()
    try:
        await a.remove_interest("/", "never")
    except ValueError:
        pass
    else:
        raise AssertionError("remove_interest of an unknown room did not raise")


def _answering(node: ClusterBroker, log: list[NodeRequest] | None = None) -> None:
    def answer(request: NodeRequest) -> Any:
        if log is not None:
            log.append(request)
        return {"node": node.node_id, "echo": request.payload}

    node.set_handlers(on_request=answer)


async def check_request_all_nodes(make_node: NodeFactory) -> None:
    """A request reaches every live node, this one included, and gathers all replies."""
    nodes = [await make_node() for _ in range(3)]
    logs: list[list[NodeRequest]] = []
    for node in nodes:
        log: list[NodeRequest] = []
        logs.append(log)
        _answering(node, log)
    a = nodes[0]
    await wait_until_async(a.live_nodes, sorted(n.node_id for n in nodes))
    result = await a.request("/", "ping", {"n": 1, "b": b"\x01"}, timeout=WAIT)
    assert result.complete, result
    assert set(result.replies) == {n.node_id for n in nodes}
    for node in nodes:
        assert result.replies[node.node_id] == {
            "node": node.node_id,
            "echo": {"n": 1, "b": b"\x01"},
        }
    for log in logs:
        assert len(log) == 1 and log[0].kind == "ping" and log[0].origin == a.node_id
    only = await a.request("/", "ping", 2, nodes=[nodes[1].node_id, "no-such-node"])
    assert set(only.replies) == {nodes[1].node_id} and only.missing == {"no-such-node"}
    assert only.unsent == {"no-such-node"}  # not alive: never sent, safe to ask again
    assert a.pending_requests == 0


async def check_request_errors(make_node: NodeFactory) -> None:
    """A handler that raises is reported in ``errors``, the others still answer."""
    a, b = await make_node(), await make_node()
    _answering(a)

    def fail(request: NodeRequest) -> Any:
        raise RuntimeError("no")

    b.set_handlers(on_request=fail)
    await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    result = await a.request("/", "x", None, timeout=WAIT)
    assert set(result.replies) == {a.node_id} and set(result.errors) == {b.node_id}
    assert "no" in result.errors[b.node_id] and not result.complete


async def check_request_timeout(make_node: NodeFactory) -> None:
    """A node too slow to answer is reported missing when the timeout passes."""
    a, b = await make_node(), await make_node()
    _answering(a)
    release = asyncio.Event()

    async def slow(request: NodeRequest) -> Any:
        await release.wait()
        return "late"

    b.set_handlers(on_request=slow)
    await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    result = await a.request("/", "slow", None, timeout=0.3)
    assert result.timed_out and result.missing == {b.node_id}, result
    assert not result.unsent  # b has it: asking again could run it twice
    assert set(result.replies) == {a.node_id}
    assert a.pending_requests == 0
    release.set()
    await wait_until(lambda: a.stats.late_replies == 1, "the late reply counted")
    assert a.pending_requests == 0


async def check_request_node_dies(make_node: NodeFactory) -> None:
    """A node that dies during a request is given up once it is dead, well before timeout."""
    a, b = await make_node(), await make_node()
    _answering(a)
    started = asyncio.Event()

    async def hang(request: NodeRequest) -> Any:
        started.set()
        await asyncio.Event().wait()

    b.set_handlers(on_request=hang)
    await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    task = asyncio.ensure_future(a.request("/", "hang", None, timeout=60.0))
    await asyncio.wait_for(started.wait(), WAIT)
    await b.abort()
    result = await asyncio.wait_for(task, WAIT)
    assert not result.timed_out and result.missing == {b.node_id}, result
    assert not result.unsent
    assert set(result.replies) == {a.node_id}
    assert a.pending_requests == 0


async def check_pending_requests_bounded(make_node: NodeFactory) -> None:
    """Past ``max_pending_requests`` waiting requests, the next one raises BufferFull."""
    a = await make_node(max_pending_requests=2)
    b = await make_node()
    release = asyncio.Event()

    async def hang(request: NodeRequest) -> Any:
        await release.wait()

    b.set_handlers(on_request=hang)
    await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    waiting = [asyncio.ensure_future(a.request("/", "hang", timeout=WAIT)) for _ in range(2)]
    await wait_until(lambda: a.pending_requests == 2, "two requests waiting")
    try:
        await a.request("/", "one too many", timeout=WAIT)
    except Exception as exc:
        assert type(exc).__name__ == "BufferFull", exc
    else:
        raise AssertionError("a third pending request was accepted")
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*waiting), WAIT)
    assert all(r.complete for r in results), results
    assert a.pending_requests == 0


async def check_concurrent_requests_bounded(make_node: NodeFactory) -> None:
    """Past ``max_concurrent_requests`` running handlers, a node answers "busy" at once."""
    a = await make_node()
    b = await make_node(max_concurrent_requests=1)
    release = asyncio.Event()

    async def hang(request: NodeRequest) -> Any:
        await release.wait()
        return "done"

    b.set_handlers(on_request=hang)
    await wait_until_async(a.live_nodes, sorted([a.node_id, b.node_id]))
    first = asyncio.ensure_future(a.request("/", "hang", nodes=[b.node_id], timeout=WAIT))
    await wait_until(lambda: b.stats.requests_handled == 1, "b handling the first request")
    second = await a.request("/", "hang", nodes=[b.node_id], timeout=WAIT)
    assert second.errors == {b.node_id: "busy"} and b.stats.requests_refused == 1, second
    release.set()
    result = await asyncio.wait_for(first, WAIT)
    assert result.replies == {b.node_id: "done"}, result


async def check_plain_publish_subscribe(make_node: NodeFactory) -> None:
    """The plain Broker API: an envelope reaches the subscribers of every node."""
    a, b = await make_node(), await make_node()
    got_a: list[Envelope] = []
    got_b: list[Envelope] = []
    await a.subscribe("tether#/", got_a.append)
    await b.subscribe("tether#/", got_b.append)
    envelope = Envelope("broadcast", "/", a.node_id, {"data": ["x", b"\x02"], "n": 1})
    await a.publish("tether#/", envelope)
    await wait_until(lambda: bool(got_a and got_b), "the envelope on both nodes")
    assert got_a == [envelope] and got_b == [envelope], (got_a, got_b)
    await b.unsubscribe("tether#/", got_b.append)


async def check_slow_handler_isolation(make_node: NodeFactory) -> None:
    """A handler call that hangs delays the next message by a bound, not forever."""
    a = await make_node()
    b = await make_node(handler_timeout=0.05)
    release = asyncio.Event()
    seen: list[str | None] = []

    async def handler(message: Broadcast | RemoteCommand) -> None:
        assert isinstance(message, Broadcast)
        seen.append(message.event)
        if message.event == "hang":
            await release.wait()

    b.set_handlers(on_message=handler)
    _answering(b)
    await b.add_interest("/", "r")
    await a.broadcast("/", ["hang"], rooms=["r"])
    await a.broadcast("/", ["next"], rooms=["r"])
    await wait_until(lambda: seen == ["hang", "next"], "the message after the hanging one")
    assert b.stats.slow_handlers == 1
    result = await a.request("/", "still", None, nodes=[b.node_id], timeout=WAIT)
    assert result.complete
    release.set()


async def check_queue_overflow_is_counted(make_node: NodeFactory) -> None:
    """Past the queue's high-water mark messages are dropped and counted, not queued."""
    a = await make_node()
    b = await make_node(queue_size=2, handler_timeout=0.01, max_detached=1)
    release = asyncio.Event()
    seen: list[str | None] = []

    async def handler(message: Broadcast | RemoteCommand) -> None:
        assert isinstance(message, Broadcast)
        seen.append(message.event)
        await release.wait()

    b.set_handlers(on_message=handler)
    await b.add_interest("/", "r")
    await a.broadcast("/", ["first"], rooms=["r"])
    await wait_until(lambda: seen == ["first"], "the first message handled")
    for i in range(10):
        await a.broadcast("/", [f"m{i}"], rooms=["r"])
    await wait_until(lambda: b.stats.received == 11, "all 11 messages read")
    # The worker waits on the one detached call; the queue holds 2; 8 are dropped.
    assert b.stats.dropped == 8, b.stats
    release.set()
    await wait_until(lambda: len(seen) == 3, "the queued messages handled")
    assert seen == ["first", "m0", "m1"], seen


CHECKS: dict[str, Callable[[NodeFactory], Awaitable[None]]] = {
    name.removeprefix("check_"): check
    for name, check in sorted(globals().items())
    if name.startswith("check_") and callable(check)
}
"""Every check of this module, by name (without the ``check_`` prefix)."""
