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
by interest, and puts messages on a bounded queue that one worker empties; a full queue
drops and counts, a slow handler is left running detached (:mod:`tether.broker.inbox`
says how each is bounded). Incoming requests run as separate tasks, at most
``max_concurrent_requests`` at a time; a request past that limit is answered with an
error at once (counted in ``stats.requests_refused``).

The parts live in the modules named after them (:mod:`~tether.broker.channels`,
:mod:`~tether.broker.messages`, :mod:`~tether.broker.stats`,
:mod:`~tether.broker.interest`, :mod:`~tether.broker.inbox`,
:mod:`~tether.broker.requests`); this module ties them into one object, and every name
it exported before the split is still importable from it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

from ..exceptions import BufferFull, InvalidState
from .base import Broker, Envelope, Subscriber
from .channels import (
    ChannelInfo,
    envelope_channel,
    namespace_channel,
    node_channel,
    room_channel,
)
from .inbox import Handler, Inbox, Item, RecentIds
from .interest import ChannelInterest
from .messages import (
    Broadcast,
    MessageHandler,
    NodeRequest,
    RemoteCommand,
    Reply,
    RequestHandler,
    RequestResult,
    SessionRecord,
)
from .requests import Answers, PendingRequest, PendingRequests
from .stats import BrokerStats
from .tasks import cancel_and_wait, wait_event

__all__ = ["BrokerState", "ClusterBroker", "check_positive"]

logger = logging.getLogger("tether.broker")

BrokerState = Literal["connected", "reconnecting", "degraded", "closed"]
"""``connected``: all is well. ``reconnecting``: the pub/sub connection is down.
``degraded``: Redis answers but this node is not whole yet (publishes are buffered, being
flushed, or waiting for peers to resubscribe). ``closed``: not started, or closed."""


def check_positive(**values: float) -> None:
    """Check that every option given is positive (in the order given).

    Raises:
        ValueError: one of them is zero or negative.
    """
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, not {value!r}")


class ClusterBroker(Broker):
    """A broker that routes by interest, answers requests and knows the live nodes.

    Subclasses provide the transport (the ``_transport_*`` methods); this class ties
    together the interest reference counts (:class:`~tether.broker.interest.ChannelInterest`),
    the incoming queue and its worker (:class:`~tether.broker.inbox.Inbox`), the recent-id
    set, and the requests asked and answered (:mod:`tether.broker.requests`). See the
    module docstring for the contract.

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
        check_positive(
            queue_size=queue_size,
            handler_timeout=handler_timeout,
            max_detached=max_detached,
            max_concurrent_requests=max_concurrent_requests,
            max_pending_requests=max_pending_requests,
            dedup_size=dedup_size,
            subscribe_timeout=subscribe_timeout,
            request_timeout=request_timeout,
        )
        if not prefix or "#" in prefix:
            raise ValueError(f"prefix must be non-empty and without '#': {prefix!r}")
        self.prefix = prefix
        self.node_id = node_id or secrets.token_hex(8)
        self.stats = BrokerStats()
        self._node_channel = node_channel(prefix, self.node_id)
        self._subscribe_timeout = subscribe_timeout
        self.request_timeout = request_timeout
        self._recent = RecentIds(dedup_size)

        self._on_message: MessageHandler | None = None
        self._started = False
        self._closed = False

        self._interest = ChannelInterest(
            prefix, self._node_channel, self._subscribe_batch, subscribe_timeout
        )
        self._envelope_subscribers: dict[str, list[Subscriber]] = {}
        self._queue_size = queue_size
        self._inbox = Inbox(queue_size, handler_timeout, max_detached, self.stats, self._handlers)
        self._pending = PendingRequests(max_pending_requests, self.stats)
        self._kind_limits: dict[str, int] = {}
        self._log_max_packets = 10_000
        self._log_retention = 150.0
        self._pending_by_kind: dict[str, int] = {}
        self._answers = Answers(
            self.node_id, max_concurrent_requests, self.stats, self._transport_reply
        )

    async def _subscribe_batch(self, subscribe: list[str], unsubscribe: list[str]) -> None:
        self.stats.subscribe_batches += 1
        await self._transport_subscribe(subscribe, unsubscribe)

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
        other nodes and emitters (never this node's own, except durable broadcasts: see
        :meth:`broadcast`). ``on_request`` receives every
        :class:`NodeRequest` (this node's own included) and returns the reply (or an
        awaitable of it). Without ``on_request`` a node answers ``None``.
        """
        if on_message is not None:
            self._on_message = on_message
        if on_request is not None:
            self._answers.handler = on_request

    def set_request_limit(self, kind: str, limit: int) -> None:
        """Give requests of ``kind`` a budget of their own, both ways: at most ``limit``
        of them waiting for replies here and ``limit`` being answered here, instead of
        ``max_pending_requests`` / ``max_concurrent_requests`` (for requests that wait
        long by design and are bounded by whoever sends them: a forwarded long-poll).

        Raises:
            ValueError: ``limit`` is below 1.
        """
        if limit < 1:
            raise ValueError(f"a request limit must be at least 1, not {limit!r}")
        self._kind_limits[kind] = limit
        self._answers.kind_limits[kind] = limit

    async def start(self) -> None:
        """Connect and start the worker; idempotent. Other methods call it when needed.

        It waits (at most ``subscribe_timeout``) for the first connection, then returns
        either way: a transport that is down is retried in the background and
        :attr:`state` says so (``"reconnecting"``).

        Raises:
            InvalidState: the broker was closed.
        """
        self._check_open()
        if self._started:
            return
        self._started = True
        self._inbox.start(f"tether-broker-worker-{self.node_id}")
        try:
            await self._transport_start()
        except BaseException:
            self._started = False
            self._inbox.stop()
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
        await cancel_and_wait([*self._inbox.tasks, *self._answers.tasks, *self._interest.tasks])
        self._interest.close()
        self._pending.wake_all()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidState("the broker is closed")

    # ------------------------------------------------------------------ interest

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
        return await self._interest.add(namespace, room)

    async def remove_interest(self, namespace: str, room: str | None = None) -> None:
        """Undo one :meth:`add_interest`; the last one unsubscribes the channel.

        Raises:
            InvalidState: the broker is closed.
            ValueError: there is no such interest.
        """
        self._check_open()
        self._interest.remove(namespace, room)

    def has_interest(self, namespace: str, room: str | None = None) -> bool:
        """Whether this node has declared interest in ``room`` (or the namespace)."""
        return self._interest.has(namespace, room)

    @property
    def channels(self) -> frozenset[str]:
        """The channels of interest right now (the node channel excluded)."""
        return self._interest.channels

    def _confirmed(self, channel: str) -> None:
        """Called by the transport when ``channel`` is subscribed."""
        self._interest.confirmed(channel)

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
        durable: bool = False,
    ) -> str:
        """Send a broadcast to the other nodes (this node delivers locally itself).

        With rooms, one copy goes on each room channel; without, one on the namespace
        channel. All copies share one message id, so a node hosting several of the rooms
        handles it once.

        A ``durable`` broadcast (only where :attr:`durable` is true) is also kept in the
        cluster's recovery log, and every node that hosts a matching socket receives it
        with its :attr:`Broadcast.offset`, this one included (it must not deliver it
        locally itself): the log and every node then see the broadcasts in one order.

        Args:
            namespace: the Socket.IO namespace.
            data: ``[event, *args]`` (args may include bytes).
            rooms: target rooms (none: the whole namespace).
            except_rooms: rooms whose sockets are skipped.
            flags: Socket.IO flags (``volatile``...).
            encoded: instead of ``data``, a packet this node encoded (tether nodes only).
            durable: keep it in the recovery log (see above).

        Returns:
            The message id.

        Raises:
            InvalidState: the broker is closed.
            ValueError: both or neither of ``data`` and ``encoded`` were given, or
                ``durable`` on a broker without a recovery log.
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
        if durable:
            if not self.durable:
                raise ValueError(f"{type(self).__name__} keeps no recovery log")
            await self._transport_durable_broadcast(channels, message)
        else:
            await self._transport_broadcast(channels, message)
        assert message.message_id is not None
        return message.message_id

    # ------------------------------------------------------------------ recovery log

    @property
    def durable(self) -> bool:
        """Whether this broker keeps a recovery log and session records shared by every
        node (then connection-state recovery works across nodes)."""
        return False

    def set_recovery_limits(self, *, max_packets: int, retention: float) -> None:
        """Bound the recovery log: at most ``max_packets`` broadcasts per namespace,
        none older than ``retention`` seconds.

        Raises:
            ValueError: a limit is not positive.
        """
        check_positive(max_packets=max_packets, retention=retention)
        self._log_max_packets = max_packets
        self._log_retention = retention

    async def _transport_durable_broadcast(self, channels: list[str], message: Broadcast) -> None:
        raise NotImplementedError

    async def save_sessions(self, records: Sequence[SessionRecord], ttl: float) -> None:
        """Write session records, each kept ``ttl`` seconds (unless written again).
        A record without a position gets the log's newest offset.

        Raises:
            InvalidState: the broker is closed.
            NotImplementedError: the broker keeps no recovery log.
            Exception: the transport failed (the records are not written).
        """
        raise NotImplementedError

    async def delete_sessions(self, pids: Sequence[str]) -> None:
        """Forget session records (sockets that left on purpose).

        Raises:
            NotImplementedError: the broker keeps no recovery log.
            Exception: the transport failed.
        """
        raise NotImplementedError

    async def peek_session(self, pid: str) -> SessionRecord | None:
        """The session record of ``pid``, or None (never written, expired or taken).

        Raises:
            NotImplementedError: the broker keeps no recovery log.
            Exception: the transport failed.
        """
        raise NotImplementedError

    async def take_session(self, pid: str) -> bool:
        """Delete the session record of ``pid``; True for the one caller that did it
        (a session is recovered once).

        Raises:
            NotImplementedError: the broker keeps no recovery log.
            Exception: the transport failed.
        """
        raise NotImplementedError

    async def missed(self, namespace: str, after: str) -> list[Broadcast] | None:
        """The durable broadcasts of ``namespace`` after offset ``after``, oldest first
        (with their offsets), or None when some of them were trimmed from the log (or
        ``after`` is no offset of this log).

        Raises:
            NotImplementedError: the broker keeps no recovery log.
            Exception: the transport failed.
        """
        raise NotImplementedError

    async def node_listening(self, node: str) -> bool:
        """Whether ``node`` is connected to the transport now (a node killed a moment
        ago is not, even before its heartbeat expires).

        Raises:
            NotImplementedError: the broker keeps no recovery log.
            Exception: the transport failed.
        """
        raise NotImplementedError

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
        call is given up (listed in ``missing``) once it is still expired a beat later
        (``liveness_grace``), within about two heartbeat intervals of the expiry. On
        ``timeout`` the call returns what it has, with ``timed_out`` set; it does not
        raise.

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
        kind_limit = self._kind_limits.get(kind)
        if kind_limit is None:
            self._pending.check_room()
        elif self._pending_by_kind.get(kind, 0) >= kind_limit:
            raise BufferFull(f"{kind_limit} {kind} requests are already waiting")
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
        request_id = secrets.token_hex(8)
        req = NodeRequest(namespace, kind, payload, self.node_id, request_id)
        pending = self._pending.open(request_id, targets)
        if asked is not None:
            pending.give_up(asked - targets, sent=False)
        self.stats.requests_sent += 1
        local: asyncio.Task[None] | None = None
        self._pending_by_kind[kind] = self._pending_by_kind.get(kind, 0) + 1
        try:
            remote = sorted(targets - {self.node_id})
            if self.node_id in targets:
                local = asyncio.get_running_loop().create_task(self._answer_local(req, pending))
            if remote:
                pending.give_up(await self._transport_request(remote, req))
            timed_out = False
            grace = self.liveness_grace
            expired_since: dict[str, float] = {}
            while pending.waiting and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                await wait_event(pending.done, min(remaining, self._liveness_check_interval()))
                if not pending.waiting:
                    break
                # A node that died is given up once its heartbeat has expired and stayed
                # so for a beat (a late beat, from a paused process, is not a death).
                remote_waiting = pending.waiting - {self.node_id}
                if remote_waiting:
                    with contextlib.suppress(Exception):
                        alive = await self._transport_live(remote_waiting)
                        now = time.monotonic()
                        dead = []
                        for node in remote_waiting:
                            if node in alive:
                                expired_since.pop(node, None)
                            elif now - expired_since.setdefault(node, now) >= grace:
                                dead.append(node)
                        pending.give_up(dead)
            return pending.result(timed_out=timed_out)
        finally:
            self._pending_by_kind[kind] -= 1
            self._pending.close(request_id)
            if local is not None and not local.done():
                local.cancel()
                with contextlib.suppress(BaseException):
                    await local

    def _liveness_check_interval(self) -> float:
        return 0.5

    @property
    def liveness_grace(self) -> float:
        """How late a live node's heartbeat can reasonably be, in seconds (one beat
        period): a node that looks dead for less than this may only be slow."""
        return 2 * self._liveness_check_interval()

    @property
    def pending_requests(self) -> int:
        """How many requests of this node are waiting for replies (a gauge)."""
        return len(self._pending)

    async def _answer_local(self, request: NodeRequest, pending: PendingRequest) -> None:
        pending.add(await self._answers.answer(request))

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
        await self._interest.acquire([(name, ChannelInfo("envelope", name=channel))])

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber`` for ``channel`` (unknown subscribers are ignored)."""
        subscribers = self._envelope_subscribers.get(channel, [])
        if subscriber in subscribers and not self._closed:
            subscribers.remove(subscriber)
            if not subscribers:
                del self._envelope_subscribers[channel]
            self._interest.release([envelope_channel(self.prefix, channel)])

    # ------------------------------------------------------------------ incoming

    def _count(self, kind: str) -> None:
        """Called by the transport for every message read, before decoding."""
        self.stats.received += 1
        by_kind = self.stats.received_by_kind
        by_kind[kind] = by_kind.get(kind, 0) + 1

    def _channel_info(self, channel: str) -> ChannelInfo | None:
        """What ``channel`` carries, if this node is subscribed to it."""
        if channel == self._node_channel:
            return ChannelInfo("node")
        return self._interest.info(channel)

    def _incoming(self, channel: str, message: Broadcast | RemoteCommand | Envelope) -> None:
        """Called by the transport for every decoded message (never blocks)."""
        info = self._interest.info(channel)
        if info is None:
            # A message still in flight for a channel just unsubscribed.
            self.stats.irrelevant += 1
            return
        if isinstance(message, Envelope):
            self._inbox.put((message, info.name or ""))
            return
        if message.origin == self.node_id and not (
            isinstance(message, Broadcast) and message.offset is not None
        ):
            self.stats.own += 1
            return
        if isinstance(message, Broadcast):
            if message.message_id is not None and self._recent.seen(message.message_id):
                self.stats.duplicates += 1
                return
            if (
                info.kind == "namespace"  # emitter multi-room broadcasts come on it
                and message.rooms
                and self._interest.local_rooms(message.namespace).isdisjoint(message.rooms)
            ):
                self.stats.irrelevant += 1
                return
        self._inbox.put((message, None))

    def _handlers(self, item: Item) -> list[Handler]:
        """The handlers of ``item``, asked by the inbox worker when it takes the item."""
        message, channel = item
        if isinstance(message, Envelope):
            return list(self._envelope_subscribers.get(channel or "", ()))
        return [] if self._on_message is None else [self._on_message]

    def _incoming_request(self, request: NodeRequest) -> None:
        """Called by the transport for a request of another node."""
        self._answers.incoming(request)

    def _incoming_reply(self, reply: Reply) -> None:
        """Called by the transport for a reply to one of this node's requests."""
        self._pending.reply(reply)
