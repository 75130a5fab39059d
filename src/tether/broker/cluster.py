"""The cluster interface of a broker: interest routing, broadcasts, requests, liveness.

A :class:`ClusterBroker` is a :class:`~tether.broker.base.Broker` that also knows about
the other nodes of the cluster. The realtime hub talks to it in Socket.IO terms:

- **Interest.** ``await add_interest(ns)`` when a namespace gets its first local socket,
  ``await add_interest(ns, room)`` when a room gets its first local member (and the
  matching ``remove_interest`` calls when they go). Calls are reference counted: only the
  0 -> 1 and 1 -> 0 transitions reach the transport, and all transitions made in one loop
  turn are sent as one SUBSCRIBE/UNSUBSCRIBE command. ``add_interest`` returns when the
  subscription is confirmed, so a broadcast published after it returns reaches this node
  (the race of socket.io#4734 cannot happen).
- **Broadcasts.** ``await broadcast(ns, [event, *args], rooms=..., except_rooms=...)``
  publishes once per room channel (so only nodes hosting one of the rooms receive it), or
  once on the namespace channel when no room is given. Every copy carries the same message
  id, and receivers de-duplicate with a bounded set of recent ids.
- **Incoming messages** (:class:`Broadcast`, :class:`RemoteCommand`) go to the
  ``on_message`` handler through a bounded queue and one worker task (see *Isolation*).
- **Requests.** ``await request(ns, kind, payload)`` asks every live node (this one
  included) and returns a :class:`RequestResult` with the replies and the ids of the nodes
  that did not answer: a node that dies during the request is given up as soon as its
  heartbeat expires, and a timeout returns what came so far instead of raising.

Isolation: the transport reader never runs user code. It decodes, de-duplicates, filters
by interest, and puts messages on a queue of ``queue_size`` items; when the queue is full
the message is dropped and counted in ``stats.dropped`` (the reader is never stalled, which
is the python-socketio failure mode in research/scaling-anchors.md). One worker takes the
messages in order and calls ``on_message``; a coroutine result is awaited for at most
``handler_timeout`` seconds, after which it keeps running detached (counted in
``stats.slow_handlers``) and the worker moves on, so one slow call delays the next by a
bounded time. At most ``max_detached`` calls run detached; past that the worker waits for
one to finish (and the queue, not the reader, absorbs the wait). Incoming requests run as
separate tasks, at most ``max_concurrent_requests`` at a time; a request past that limit
is answered with an error at once (counted in ``stats.requests_refused``).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ..exceptions import BufferFull, InvalidState
from .base import Broker, Envelope, Subscriber

__all__ = [
    "Broadcast",
    "BrokerState",
    "BrokerStats",
    "ChannelInfo",
    "ClusterBroker",
    "CommandKind",
    "MessageHandler",
    "NodeRequest",
    "RemoteCommand",
    "Reply",
    "RequestHandler",
    "RequestResult",
    "cancel_and_wait",
    "envelope_channel",
    "namespace_channel",
    "node_channel",
    "request_channel",
    "room_channel",
    "wait_event",
]

logger = logging.getLogger("tether.broker")

BrokerState = Literal["connected", "reconnecting", "degraded", "closed"]
"""``connected``: all is well. ``reconnecting``: the pub/sub connection is down.
``degraded``: Redis answers but this node is not whole yet (publishes are buffered, being
flushed, or waiting for peers to resubscribe). ``closed``: not started, or closed."""

CommandKind = Literal["join", "leave", "disconnect", "server_side_emit"]

EVENT = 2
BINARY_EVENT = 5


# ---------------------------------------------------------------------------- channel names
# The socket.io classic redis adapter and @socket.io/redis-emitter use these exact names
# (with their key "socket.io"), so an emitter configured with our prefix reaches us.


def namespace_channel(prefix: str, namespace: str) -> str:
    """The channel of broadcasts to a whole namespace (or to several rooms)."""
    return f"{prefix}#{namespace}#"


def room_channel(prefix: str, namespace: str, room: str) -> str:
    """The channel of broadcasts to one room."""
    return f"{prefix}#{namespace}#{room}#"


def request_channel(prefix: str, namespace: str) -> str:
    """The channel of the emitter's requests (join, leave, disconnect, server-side emit)."""
    return f"{prefix}-request#{namespace}#"


def node_channel(prefix: str, node_id: str) -> str:
    """The channel of one node: requests to it and replies to its requests."""
    return f"{prefix}#node#{node_id}#"


def envelope_channel(prefix: str, channel: str) -> str:
    """The channel that carries the plain :meth:`Broker.publish` envelopes of ``channel``."""
    return f"{prefix}#env#{channel}"


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a subscribed channel carries (kept by the broker for every channel).

    Attributes:
        kind: ``"room"``, ``"namespace"``, ``"request"``, ``"node"`` or ``"envelope"``.
        namespace: the namespace (empty for node and envelope channels).
        room: the room of a room channel, else ``None``.
        name: the plain channel name of an envelope channel, else ``None``.
    """

    kind: Literal["room", "namespace", "request", "node", "envelope"]
    namespace: str = ""
    room: str | None = None
    name: str | None = None


# ---------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A broadcast from another node or from an emitter.

    Attributes:
        namespace: the Socket.IO namespace.
        rooms: the target rooms; empty means every socket of the namespace.
        except_rooms: sockets in any of these rooms are skipped.
        data: the packet data, ``[event, *args]`` for an event (binary args are bytes).
        flags: the emitter's flags (``volatile``, ``compress``, ``timeout``...).
        origin: the uid of the publisher (a node id, or ``"emitter"``).
        message_id: the id shared by every copy of one broadcast (``None`` from emitters).
        packet_type: the Socket.IO packet type (2 EVENT, 5 BINARY_EVENT...).
        encoded: a packet the publisher encoded itself (then ``data`` is empty).
    """

    namespace: str
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    data: tuple[Any, ...] = ()
    flags: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""
    message_id: str | None = None
    packet_type: int = EVENT
    encoded: bytes | str | None = None

    @property
    def event(self) -> str | None:
        """The event name of an event packet, else ``None``."""
        if self.packet_type in (EVENT, BINARY_EVENT) and self.data:
            first = self.data[0]
            return first if isinstance(first, str) else None
        return None

    @property
    def args(self) -> tuple[Any, ...]:
        """The arguments of an event packet (after the event name)."""
        return self.data[1:] if self.event is not None else ()


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """An emitter's request: make sockets join/leave rooms, disconnect them, or an event.

    Attributes:
        namespace: the Socket.IO namespace.
        kind: ``"join"``, ``"leave"``, ``"disconnect"`` or ``"server_side_emit"``.
        rooms: the sockets concerned are those in these rooms (empty: all of them).
        except_rooms: ... minus those in these rooms.
        target_rooms: for join/leave, the rooms to join or leave.
        close: for disconnect, whether to close the underlying connection.
        data: for server_side_emit, ``[event, *args]``.
        origin: the uid of the publisher (``"emitter"`` or a node id).
    """

    namespace: str
    kind: CommandKind
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    target_rooms: tuple[str, ...] = ()
    close: bool = False
    data: tuple[Any, ...] = ()
    origin: str = ""


@dataclass(frozen=True, slots=True)
class NodeRequest:
    """A request from a node, handed to the ``on_request`` handler of every node asked.

    Attributes:
        namespace: the Socket.IO namespace it concerns.
        kind: what is asked (the hub defines the kinds: ``"fetch_sockets"``...).
        payload: kind-specific data (msgpack-serializable for Redis).
        origin: the id of the node that asked.
        request_id: unique per request.
    """

    namespace: str
    kind: str
    payload: Any
    origin: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One node's answer to a :class:`NodeRequest` (internal, public for transports).

    Attributes:
        request_id: the id of the request answered.
        node_id: the node that answered.
        ok: whether the handler returned (``False``: it raised, or the node refused).
        data: the handler's return value when ``ok``.
        error: a description of the failure when not ``ok``.
    """

    request_id: str
    node_id: str
    ok: bool
    data: Any = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class RequestResult:
    """What :meth:`ClusterBroker.request` gathered.

    Attributes:
        replies: the return value of the handler of every node that answered, by node id.
        errors: the nodes whose handler raised (or that refused the request), by node id.
        missing: the nodes that were asked and did not answer (dead, or too slow).
        timed_out: ``True`` when the call returned because ``timeout`` passed.
    """

    replies: Mapping[str, Any]
    errors: Mapping[str, str]
    missing: frozenset[str]
    timed_out: bool

    @property
    def complete(self) -> bool:
        """Every node asked answered without error."""
        return not self.missing and not self.errors and not self.timed_out


MessageHandler = Callable[[Broadcast | RemoteCommand], Awaitable[None] | None]
RequestHandler = Callable[[NodeRequest], Any]


@dataclass
class BrokerStats:
    """Counters of one broker (monotonic unless said otherwise).

    Attributes:
        published: messages handed to the transport (one per channel copy).
        received: messages read from the transport (every kind, before filtering).
        received_by_kind: ``received`` split by channel kind (room, namespace, ...).
        delivered: messages handed to ``on_message`` or to envelope subscribers.
        own: own broadcasts read back and skipped.
        duplicates: copies skipped by the recent-id set.
        irrelevant: broadcasts for rooms this node has no interest in (should stay 0
            with room channels; emitter multi-room broadcasts can raise it).
        dropped: messages dropped because the incoming queue was full.
        decode_errors: messages that could not be decoded.
        handler_errors: handler calls that raised.
        slow_handlers: handler calls that outlived ``handler_timeout``.
        requests_sent: requests sent (one per call of ``request``).
        requests_handled: incoming requests handed to ``on_request``.
        requests_refused: incoming requests refused (too many running).
        late_replies: replies for a request that had already returned.
        subscribe_commands: SUBSCRIBE/UNSUBSCRIBE commands sent.
        reconnects: times the pub/sub connection was re-established.
        resubscribed: channels subscribed again after a reconnect.
        buffered: messages in the outage buffer now (a gauge).
        buffered_bytes: bytes in the outage buffer now (a gauge).
        buffered_total: messages that went through the outage buffer.
        buffer_rejected: publishes refused with BufferFull.
    """

    published: int = 0
    received: int = 0
    received_by_kind: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    own: int = 0
    duplicates: int = 0
    irrelevant: int = 0
    dropped: int = 0
    decode_errors: int = 0
    handler_errors: int = 0
    slow_handlers: int = 0
    requests_sent: int = 0
    requests_handled: int = 0
    requests_refused: int = 0
    late_replies: int = 0
    subscribe_commands: int = 0
    reconnects: int = 0
    resubscribed: int = 0
    buffered: int = 0
    buffered_bytes: int = 0
    buffered_total: int = 0
    buffer_rejected: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy of the counters (for metrics and logs)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, dict) else value
        return out


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; return whether it is set.

    Used instead of ``asyncio.wait_for(event.wait(), ...)``, whose cancellation
    handling on Python 3.11 left tasks stuck in "cancelling" next to redis-py's timeouts.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], bound: float = 2.0) -> None:
    """Cancel ``tasks`` and wait for them, at most about ``bound`` seconds in all.

    A task may swallow a cancellation (a handler that catches it; on Python 3.11 an
    ``asyncio.timeout`` whose deadline passes at the same moment turns it into
    TimeoutError), so the cancel is repeated and the wait bounded rather than trusted.
    """
    pending = {task for task in tasks if not task.done()}
    rounds = 4
    for _ in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=bound / rounds)
    if pending:
        logger.warning("%d broker tasks did not stop when cancelled", len(pending))


class _RecentIds:
    """A bounded set of recently seen message ids (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._order: collections.deque[str] = collections.deque()
        self._ids: set[str] = set()

    def seen(self, message_id: str) -> bool:
        """Record ``message_id``; return whether it was already there."""
        if message_id in self._ids:
            return True
        self._ids.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return False


@dataclass
class _Pending:
    """A request of ours waiting for replies."""

    waiting: set[str]
    replies: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, reply: Reply) -> None:
        if reply.node_id not in self.waiting:
            return
        self.waiting.discard(reply.node_id)
        if reply.ok:
            self.replies[reply.node_id] = reply.data
        else:
            self.errors[reply.node_id] = reply.error
        if not self.waiting:
            self.done.set()


_Item = tuple[Broadcast | RemoteCommand, None] | tuple[Envelope, str]


class ClusterBroker(Broker):
    """A broker that routes by interest, answers requests and knows the live nodes.

    Subclasses provide the transport (the ``_transport_*`` methods); this class keeps the
    interest reference counts, the incoming queue and its worker, the recent-id set and
    the table of pending requests. See the module docstring for the contract.

    Args:
        prefix: the first part of every channel name.
        node_id: this node's id (random when omitted).
        queue_size: high-water mark of the incoming queue (drop and count beyond it).
        handler_timeout: how long the worker waits for one ``on_message`` coroutine.
        max_detached: handler calls that may outlive ``handler_timeout`` at once.
        max_concurrent_requests: incoming requests handled at once.
        max_pending_requests: outgoing requests waiting at once.
        dedup_size: how many recent message ids are remembered.
        subscribe_timeout: how long ``add_interest`` waits for the confirmation.
        request_timeout: the default ``timeout`` of :meth:`request`.

    Raises:
        ValueError: a size or timeout is not positive.
    """

    def __init__(
        self,
        *,
        prefix: str = "tether",
        node_id: str | None = None,
        queue_size: int = 1024,
        handler_timeout: float = 1.0,
        max_detached: int = 64,
        max_concurrent_requests: int = 32,
        max_pending_requests: int = 1024,
        dedup_size: int = 4096,
        subscribe_timeout: float = 5.0,
        request_timeout: float = 5.0,
    ) -> None:
        for name, value in (
            ("queue_size", queue_size),
            ("handler_timeout", handler_timeout),
            ("max_detached", max_detached),
            ("max_concurrent_requests", max_concurrent_requests),
            ("max_pending_requests", max_pending_requests),
            ("dedup_size", dedup_size),
            ("subscribe_timeout", subscribe_timeout),
            ("request_timeout", request_timeout),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if not prefix or "#" in prefix:
            raise ValueError(f"prefix must be non-empty and without '#': {prefix!r}")
        self.prefix = prefix
        self.node_id = node_id or secrets.token_hex(8)
        self.stats = BrokerStats()
        self._queue_size = queue_size
        self._handler_timeout = handler_timeout
        self._max_detached = max_detached
        self._max_concurrent_requests = max_concurrent_requests
        self._max_pending_requests = max_pending_requests
        self._subscribe_timeout = subscribe_timeout
        self.request_timeout = request_timeout
        self._recent = _RecentIds(dedup_size)

        self._on_message: MessageHandler | None = None
        self._on_request: RequestHandler | None = None
        self._started = False
        self._closed = False

        # channel name -> (reference count, what it carries)
        self._refs: dict[str, int] = {}
        self._info: dict[str, ChannelInfo] = {}
        self._subscribed: set[str] = set()  # confirmed by the transport
        self._to_sub: set[str] = set()
        self._to_unsub: set[str] = set()
        self._sub_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._flush_scheduled = False
        self._flush_lock = asyncio.Lock()
        # room interest by namespace, for the relevance filter of namespace broadcasts
        self._rooms: dict[str, set[str]] = {}
        self._envelope_subscribers: dict[str, list[Subscriber]] = {}

        self._queue: asyncio.Queue[_Item] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._detached: set[asyncio.Task[Any]] = set()
        self._request_tasks: set[asyncio.Task[None]] = set()
        self._misc_tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, _Pending] = {}

    # ------------------------------------------------------------------ transport hooks

    @abc.abstractmethod
    async def _transport_start(self) -> None:
        """Connect (or join the in-process cluster) and subscribe the node channel."""

    @abc.abstractmethod
    async def _transport_stop(self, *, graceful: bool) -> None:
        """Disconnect; ``graceful`` also deregisters the node."""

    @abc.abstractmethod
    async def _transport_subscribe(self, subscribe: list[str], unsubscribe: list[str]) -> None:
        """Send one SUBSCRIBE and one UNSUBSCRIBE; confirmations call :meth:`_confirmed`."""

    @abc.abstractmethod
    async def _transport_broadcast(self, channels: list[str], message: Broadcast) -> None:
        """Publish ``message`` on each of ``channels`` (in order)."""

    @abc.abstractmethod
    async def _transport_envelope(self, channel: str, envelope: Envelope) -> None:
        """Publish a plain envelope on the envelope channel of ``channel``."""

    @abc.abstractmethod
    async def _transport_request(self, nodes: list[str], request: NodeRequest) -> list[str]:
        """Send ``request`` to each node channel; return the nodes it could not reach."""

    @abc.abstractmethod
    async def _transport_reply(self, node: str, reply: Reply) -> None:
        """Send ``reply`` to the node channel of ``node``."""

    @abc.abstractmethod
    async def _transport_live(self, nodes: Collection[str] | None = None) -> dict[str, float]:
        """The live nodes (or those of ``nodes`` that are live) with their expiry times."""

    # ------------------------------------------------------------------ lifecycle

    @property
    @abc.abstractmethod
    def state(self) -> BrokerState:
        """``"connected"``, ``"reconnecting"``, ``"degraded"`` or ``"closed"``."""

    def set_handlers(
        self,
        *,
        on_message: MessageHandler | None = None,
        on_request: RequestHandler | None = None,
    ) -> None:
        """Set the handlers of incoming broadcasts/commands and of incoming requests.

        ``on_message`` receives every :class:`Broadcast` and :class:`RemoteCommand` from
        other nodes and emitters (never this node's own). ``on_request`` receives every
        :class:`NodeRequest` (this node's own included) and returns the reply (or an
        awaitable of it). Without ``on_request`` a node answers ``None``.
        """
        if on_message is not None:
            self._on_message = on_message
        if on_request is not None:
            self._on_request = on_request

    async def start(self) -> None:
        """Connect and start the worker; idempotent. Other methods call it when needed.

        It waits (at most ``subscribe_timeout``) for the first connection, then returns
        either way: a transport that is down is retried in the background and
        :attr:`state` says so (``"reconnecting"``).

        Raises:
            InvalidState: the broker was closed.
        """
        if self._closed:
            raise InvalidState("the broker is closed")
        if self._started:
            return
        self._started = True
        self._worker = asyncio.get_running_loop().create_task(
            self._work(), name=f"tether-broker-worker-{self.node_id}"
        )
        try:
            await self._transport_start()
        except BaseException:
            self._started = False
            self._worker.cancel()
            raise

    async def close(self) -> None:
        """Deregister, disconnect and stop the tasks; idempotent. Never raises."""
        await self._shutdown(graceful=True)

    async def abort(self) -> None:
        """Stop at once as a crash would: no deregistration, no final flush.

        The other nodes see this node die when its heartbeat expires. Never raises.
        """
        await self._shutdown(graceful=False)

    async def _shutdown(self, *, graceful: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            with contextlib.suppress(Exception):
                await self._transport_stop(graceful=graceful)
        tasks = [t for t in (self._worker,) if t is not None]
        tasks += [*self._detached, *self._request_tasks, *self._misc_tasks]
        await cancel_and_wait(tasks)
        for waiters in self._sub_waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        self._sub_waiters.clear()
        for pending in self._pending.values():
            pending.done.set()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidState("the broker is closed")

    # ------------------------------------------------------------------ interest

    def _namespace_channels(self, namespace: str) -> list[tuple[str, ChannelInfo]]:
        return [
            (namespace_channel(self.prefix, namespace), ChannelInfo("namespace", namespace)),
            (request_channel(self.prefix, namespace), ChannelInfo("request", namespace)),
        ]

    async def add_interest(self, namespace: str, room: str | None = None) -> bool:
        """Declare one local member of ``room`` (or of the namespace when ``room`` is None).

        The first declaration subscribes the channel; later ones only count. Returns
        when the subscription is confirmed, or after ``subscribe_timeout`` when the
        transport is down (the interest is kept and subscribed on reconnect).

        Returns:
            Whether the subscription is confirmed.

        Raises:
            InvalidState: the broker is closed.
        """
        await self.start()
        if room is None:
            targets = self._namespace_channels(namespace)
        else:
            targets = [
                (room_channel(self.prefix, namespace, room), ChannelInfo("room", namespace, room))
            ]
            self._rooms.setdefault(namespace, set()).add(room)
        return await self._acquire(targets)

    async def remove_interest(self, namespace: str, room: str | None = None) -> None:
        """Undo one :meth:`add_interest`; the last one unsubscribes the channel.

        Raises:
            InvalidState: the broker is closed.
            ValueError: there is no such interest.
        """
        self._check_open()
        if room is None:
            names = [name for name, _ in self._namespace_channels(namespace)]
        else:
            names = [room_channel(self.prefix, namespace, room)]
        self._release(names)
        if room is not None and names[0] not in self._refs:
            rooms = self._rooms.get(namespace)
            if rooms is not None:
                rooms.discard(room)
                if not rooms:
                    del self._rooms[namespace]

    def has_interest(self, namespace: str, room: str | None = None) -> bool:
        """Whether this node has declared interest in ``room`` (or the namespace)."""
        if room is None:
            return namespace_channel(self.prefix, namespace) in self._refs
        return room_channel(self.prefix, namespace, room) in self._refs

    @property
    def channels(self) -> frozenset[str]:
        """The channels of interest right now (the node channel excluded)."""
        return frozenset(self._refs)

    async def _acquire(self, targets: list[tuple[str, ChannelInfo]]) -> bool:
        waiters: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for name, info in targets:
            count = self._refs.get(name, 0)
            self._refs[name] = count + 1
            self._info[name] = info
            if count == 0:
                self._to_unsub.discard(name)
                if name not in self._subscribed:
                    self._to_sub.add(name)
            if name not in self._subscribed:
                fut: asyncio.Future[None] = loop.create_future()
                self._sub_waiters.setdefault(name, []).append(fut)
                waiters.append(fut)
        self._schedule_flush()
        if not waiters:
            return True
        done, _ = await asyncio.wait(waiters, timeout=self._subscribe_timeout)
        for fut in waiters:
            if not fut.done():
                fut.cancel()
        return len(done) == len(waiters) and all(n in self._subscribed for n, _ in targets)

    def _release(self, names: list[str]) -> None:
        for name in names:
            if name not in self._refs:
                raise ValueError(f"no interest in {name!r}")
        for name in names:
            self._refs[name] -= 1
            if self._refs[name] == 0:
                del self._refs[name]
                self._to_sub.discard(name)
                if name in self._subscribed:
                    self._to_unsub.add(name)
                else:
                    self._info.pop(name, None)
                    self._wake_waiters(name)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Every change made in this loop turn goes out in one command (a join storm of
        # 1000 rooms is one SUBSCRIBE, as Centrifuge batches them).
        if self._flush_scheduled or not (self._to_sub or self._to_unsub):
            return
        self._flush_scheduled = True
        task = asyncio.get_running_loop().create_task(self._flush_interest())
        self._misc_tasks.add(task)
        task.add_done_callback(self._misc_tasks.discard)

    async def _flush_interest(self) -> None:
        await asyncio.sleep(0)  # let the rest of this loop turn add to the batch
        async with self._flush_lock:
            self._flush_scheduled = False
            subscribe = sorted(self._to_sub)
            unsubscribe = sorted(self._to_unsub)
            self._to_sub.clear()
            self._to_unsub.clear()
            for name in unsubscribe:
                self._subscribed.discard(name)
                self._info.pop(name, None)
            if not (subscribe or unsubscribe):
                return
            try:
                await self._transport_subscribe(subscribe, unsubscribe)
            except Exception:
                # The transport is down: the reconnect path subscribes every channel of
                # interest, so nothing is lost by dropping this batch.
                logger.debug("subscribe batch not sent", exc_info=True)

    def _confirmed(self, channel: str) -> None:
        """Called by the transport when ``channel`` is subscribed."""
        self._subscribed.add(channel)
        if channel not in self._refs and channel != node_channel(self.prefix, self.node_id):
            # The last member left while the SUBSCRIBE was in flight: undo it.
            self._to_unsub.add(channel)
            self._schedule_flush()
        self._wake_waiters(channel)

    def _wake_waiters(self, channel: str) -> None:
        for fut in self._sub_waiters.pop(channel, ()):
            if not fut.done():
                fut.set_result(None)

    # ------------------------------------------------------------------ outgoing

    async def broadcast(
        self,
        namespace: str,
        data: Sequence[Any] = (),
        *,
        rooms: Iterable[str] = (),
        except_rooms: Iterable[str] = (),
        flags: Mapping[str, Any] | None = None,
        encoded: bytes | str | None = None,
    ) -> str:
        """Send a broadcast to the other nodes (this node delivers locally itself).

        With rooms, one copy goes on each room channel; without, one on the namespace
        channel. All copies share one message id, so a node hosting several of the rooms
        handles it once.

        Args:
            namespace: the Socket.IO namespace.
            data: ``[event, *args]`` (args may include bytes).
            rooms: target rooms (none: the whole namespace).
            except_rooms: rooms whose sockets are skipped.
            flags: Socket.IO flags (``volatile``...).
            encoded: instead of ``data``, a packet this node encoded (tether nodes only).

        Returns:
            The message id.

        Raises:
            InvalidState: the broker is closed.
            ValueError: both or neither of ``data`` and ``encoded`` were given.
            BufferFull: Redis is unreachable and the outage buffer is full.
            PayloadTooBig: the encoded message is over ``max_message_size``.
            TypeError: ``data`` holds something the wire format cannot carry.
        """
        await self.start()
        if bool(data) == (encoded is not None):
            raise ValueError("give exactly one of data and encoded")
        room_list = tuple(dict.fromkeys(rooms))
        message = Broadcast(
            namespace=namespace,
            rooms=room_list,
            except_rooms=tuple(dict.fromkeys(except_rooms)),
            data=tuple(data),
            flags=dict(flags or {}),
            origin=self.node_id,
            message_id=secrets.token_hex(8),
            encoded=encoded,
        )
        if room_list:
            channels = [room_channel(self.prefix, namespace, room) for room in room_list]
        else:
            channels = [namespace_channel(self.prefix, namespace)]
        await self._transport_broadcast(channels, message)
        assert message.message_id is not None
        return message.message_id

    async def live_nodes(self) -> list[str]:
        """The ids of the live nodes (this one included), sorted.

        Raises:
            InvalidState: the broker is closed.
        """
        await self.start()
        return sorted(await self._transport_live())

    async def request(
        self,
        namespace: str,
        kind: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        nodes: Iterable[str] | None = None,
    ) -> RequestResult:
        """Ask every live node (or those of ``nodes``) and gather their replies.

        Waits only for nodes that are alive: a node whose heartbeat expires during the
        call is given up (listed in ``missing``) when that is noticed, which is within
        about one heartbeat interval of the expiry. On ``timeout`` the call returns what
        it has, with ``timed_out`` set; it does not raise.

        Args:
            namespace: the namespace it concerns (passed to the handlers).
            kind: what is asked (passed to the handlers).
            payload: kind-specific data.
            timeout: seconds to wait at most (default: ``request_timeout``).
            nodes: ask only these nodes (those not alive are reported missing).

        Returns:
            The replies, errors and missing nodes.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: ``max_pending_requests`` requests are already waiting.
            ValueError: ``timeout`` is not positive.
        """
        await self.start()
        timeout = self.request_timeout if timeout is None else timeout
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if len(self._pending) >= self._max_pending_requests:
            raise BufferFull(f"{len(self._pending)} requests are already waiting")
        deadline = time.monotonic() + timeout
        asked = None if nodes is None else set(nodes)
        try:
            live = await self._transport_live(asked)
        except Exception:
            logger.warning("live nodes unknown: asking this node only", exc_info=True)
            live = {self.node_id: float("inf")}
        targets = set(live) if asked is None else asked & set(live)
        if asked is None or self.node_id in asked:
            targets.add(self.node_id)
        missing = set() if asked is None else asked - targets
        request_id = secrets.token_hex(8)
        req = NodeRequest(namespace, kind, payload, self.node_id, request_id)
        pending = _Pending(waiting=set(targets))
        self._pending[request_id] = pending
        self.stats.requests_sent += 1
        local: asyncio.Task[None] | None = None
        try:
            remote = sorted(targets - {self.node_id})
            if self.node_id in targets:
                local = asyncio.get_running_loop().create_task(self._answer_local(req, pending))
            if remote:
                unreachable = await self._transport_request(remote, req)
                for node in unreachable:
                    pending.waiting.discard(node)
                    missing.add(node)
            timed_out = False
            while pending.waiting and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                await wait_event(pending.done, min(remaining, self._liveness_check_interval()))
                if not pending.waiting:
                    break
                # A node that died is given up once its heartbeat has expired.
                remote_waiting = pending.waiting - {self.node_id}
                if remote_waiting:
                    with contextlib.suppress(Exception):
                        alive = await self._transport_live(remote_waiting)
                        for node in remote_waiting - set(alive):
                            pending.waiting.discard(node)
                            missing.add(node)
            missing |= pending.waiting
            return RequestResult(
                replies=dict(pending.replies),
                errors=dict(pending.errors),
                missing=frozenset(missing),
                timed_out=timed_out,
            )
        finally:
            del self._pending[request_id]
            if local is not None and not local.done():
                local.cancel()
                with contextlib.suppress(BaseException):
                    await local

    def _liveness_check_interval(self) -> float:
        return 0.5

    @property
    def pending_requests(self) -> int:
        """How many requests of this node are waiting for replies (a gauge)."""
        return len(self._pending)

    async def _answer_local(self, request: NodeRequest, pending: _Pending) -> None:
        pending.add(await self._run_request_handler(request))

    async def _run_request_handler(self, request: NodeRequest) -> Reply:
        self.stats.requests_handled += 1
        try:
            result = self._on_request(request) if self._on_request is not None else None
            if inspect.isawaitable(result):
                result = await result
            return Reply(request.request_id, self.node_id, True, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.handler_errors += 1
            logger.exception("request handler failed on %s %s", request.namespace, request.kind)
            return Reply(request.request_id, self.node_id, False, error=repr(exc))

    # ------------------------------------------------------------------ plain Broker API

    async def publish(self, channel: str, envelope: Envelope) -> None:
        """Deliver ``envelope`` to every subscriber of ``channel`` on every node.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: Redis is unreachable and the outage buffer is full.
            TypeError: the payload holds something the wire format cannot carry.
        """
        await self.start()
        await self._transport_envelope(channel, envelope)

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Call ``subscriber`` for every envelope published on ``channel`` by any node.

        Raises:
            InvalidState: the broker is closed.
        """
        await self.start()
        self._envelope_subscribers.setdefault(channel, []).append(subscriber)
        name = envelope_channel(self.prefix, channel)
        await self._acquire([(name, ChannelInfo("envelope", name=channel))])

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber`` for ``channel`` (unknown subscribers are ignored)."""
        subscribers = self._envelope_subscribers.get(channel, [])
        if subscriber in subscribers and not self._closed:
            subscribers.remove(subscriber)
            if not subscribers:
                del self._envelope_subscribers[channel]
            self._release([envelope_channel(self.prefix, channel)])

    # ------------------------------------------------------------------ incoming

    def _count(self, kind: str) -> None:
        """Called by the transport for every message read, before decoding."""
        self.stats.received += 1
        by_kind = self.stats.received_by_kind
        by_kind[kind] = by_kind.get(kind, 0) + 1

    def _channel_info(self, channel: str) -> ChannelInfo | None:
        """What ``channel`` carries, if this node is subscribed to it."""
        if channel == node_channel(self.prefix, self.node_id):
            return ChannelInfo("node")
        return self._info.get(channel)

    def _incoming(self, channel: str, message: Broadcast | RemoteCommand | Envelope) -> None:
        """Called by the transport for every decoded message (never blocks)."""
        info = self._info.get(channel)
        if info is None:
            # A message still in flight for a channel just unsubscribed.
            self.stats.irrelevant += 1
            return
        if isinstance(message, Envelope):
            self._enqueue((message, info.name or ""))
            return
        if message.origin == self.node_id:
            self.stats.own += 1
            return
        if isinstance(message, Broadcast):
            if message.message_id is not None and self._recent.seen(message.message_id):
                self.stats.duplicates += 1
                return
            if info.kind == "namespace" and message.rooms:
                # Emitter multi-room broadcasts come on the namespace channel.
                local = self._rooms.get(message.namespace, set())
                if local.isdisjoint(message.rooms):
                    self.stats.irrelevant += 1
                    return
        self._enqueue((message, None))

    def _enqueue(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            if self.stats.dropped & (self.stats.dropped - 1) == 0:  # 1, 2, 4, 8...
                logger.warning("broker queue full: %d messages dropped", self.stats.dropped)

    def _incoming_request(self, request: NodeRequest) -> None:
        """Called by the transport for a request of another node."""
        loop = asyncio.get_running_loop()
        if len(self._request_tasks) >= self._max_concurrent_requests:
            self.stats.requests_refused += 1
            reply = Reply(request.request_id, self.node_id, False, error="busy")
            task = loop.create_task(self._send_reply(request.origin, reply))
        else:
            task = loop.create_task(self._handle_request(request))
        self._request_tasks.add(task)
        task.add_done_callback(self._request_tasks.discard)

    async def _handle_request(self, request: NodeRequest) -> None:
        await self._send_reply(request.origin, await self._run_request_handler(request))

    async def _send_reply(self, node: str, reply: Reply) -> None:
        try:
            await self._transport_reply(node, reply)
        except Exception:
            logger.warning("reply to %s not sent", node, exc_info=True)

    def _incoming_reply(self, reply: Reply) -> None:
        """Called by the transport for a reply to one of this node's requests."""
        pending = self._pending.get(reply.request_id)
        if pending is None:
            self.stats.late_replies += 1
            return
        pending.add(reply)

    async def _work(self) -> None:
        while True:
            message, channel = await self._queue.get()
            if isinstance(message, Envelope):
                for subscriber in list(self._envelope_subscribers.get(channel or "", ())):
                    await self._call(subscriber, message)
            elif self._on_message is not None:
                await self._call(self._on_message, message)

    async def _call(self, handler: Callable[[Any], Any], message: Any) -> None:
        self.stats.delivered += 1
        try:
            result = handler(message)
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("broker handler failed")
            return
        if not inspect.isawaitable(result):
            return
        task = asyncio.ensure_future(result)
        task.add_done_callback(self._handler_done)
        done, _ = await asyncio.wait({task}, timeout=self._handler_timeout)
        if done:
            return
        # Too slow: let it finish on its own and go on with the next message.
        self.stats.slow_handlers += 1
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)
        if len(self._detached) >= self._max_detached:
            await asyncio.wait(set(self._detached), return_when=asyncio.FIRST_COMPLETED)

    def _handler_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.stats.handler_errors += 1
            logger.error("broker handler failed", exc_info=task.exception())
