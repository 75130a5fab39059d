"""The Redis broker: interest-routed pub/sub, node liveness, requests, outage buffer.

Channels (``P`` is the prefix, ``NS`` a namespace; the first three are the socket.io
classic adapter's, so ``@socket.io/redis-emitter`` with ``key: P`` reaches tether):

- ``P#NS#ROOM#`` broadcasts to one room; subscribed while the node has a member.
- ``P#NS#`` broadcasts to the whole namespace (or, from emitters, to several rooms).
- ``P-request#NS#`` emitter requests (join, leave, disconnect, server-side emit).
- ``P#node#ID#`` requests to node ``ID`` and replies to its requests.
- ``P#env#CHANNEL`` the envelopes of the plain ``publish``/``subscribe`` API.

Keys: ``P:nodes``, a sorted set of node id -> expiry (Unix time), refreshed every
``heartbeat_interval`` by each node while its pub/sub connection is subscribed; a node is
alive while its expiry is in the future (``3 * heartbeat_interval`` after its last beat).
Clocks of the nodes must agree to well under that.

Connections: one pub/sub connection, owned by a supervisor task that reconnects with
jittered exponential backoff and SUBSCRIBEs every channel of interest again (counted in
``stats.reconnects`` and ``stats.resubscribed``, logged at INFO). Its node channel is
subscribed last, in the last command, so when other nodes see it subscribed (``PUBSUB
NUMSUB``), every channel of interest is too. A PING every ``ping_interval`` must be
answered before the next one, or the connection is dropped and rebuilt: a subscription
killed or wedged on the Redis side is noticed within two intervals. Commands (PUBLISH,
ZADD...) use a separate client.

Outage policy: when a publish fails, or this node's pub/sub connection is lost,
publishes go to an ordered buffer of at most ``buffer_max_messages`` messages and
``buffer_max_bytes`` bytes; a publish that does not fit raises
:class:`~tether.exceptions.BufferFull` (counted in ``stats.buffer_rejected``) and
nothing is dropped silently. Once the pub/sub connection is back, the buffer is sent in
order, but only after every node that was alive before the outage has resubscribed (its
node channel is subscribed again) or has stayed away for ``node_ttl`` since Redis came
back (then it is dead), so what was buffered is not published into a Redis nobody
listens to yet. "Alive before the outage" is this node's last view (its last heartbeat
or ``live_nodes()``): a node that joined less than one ``heartbeat_interval`` before the
outage may be missing from it and miss what was buffered. A message whose PUBLISH failed
is sent again, so a receiver may see it twice: broadcasts carry a message id and
receivers drop the copy; envelopes of the plain API have no id and are at-least-once
across an outage. Requests and replies are not buffered (a late answer is useless):
during an outage the other nodes are reported missing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import random
import time
from collections.abc import Collection, Sequence
from typing import Any

from ..exceptions import BufferFull, PacketError, PayloadTooBig
from .base import Envelope
from .channels import envelope_channel, namespace_channel, node_channel
from .cluster import BrokerState, ClusterBroker, check_positive
from .messages import Broadcast, NodeRequest, RemoteCommand, Reply, SessionRecord
from .tasks import cancel_and_wait, wait_event

__all__ = ["RedisBroker"]

logger = logging.getLogger("tether.broker")

_SUBSCRIBE_CHUNK = 512  # channels per SUBSCRIBE command
_MAX_LOGS_FOLLOWED = 10_000  # namespaces whose newest durable offset is remembered
_DURABLE = "\x00durable"  # the channel of a buffered durable broadcast (no real channel)

# Stream ids are "MS-SEQ"; Lua compares them as two numbers.
_LUA_IDS = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function later(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am > bm or (am == bm and as > bs)
end
"""

# A durable broadcast: trim the log (remembering the newest id trimmed, so a recovering
# client that missed a trimmed entry is told it did not recover), append, and publish
# with the new entry's id, all in one script: the log and the pub/sub order agree.
# KEYS: stream, trim mark. ARGV: max entries, retention ms, broadcast, the publish
# command (PUBLISH, or SPUBLISH on a Redis Cluster), channels...
_DURABLE_SCRIPT = (
    _LUA_IDS
    + """
local stream, mark = KEYS[1], KEYS[2]
local maxlen, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local function trimmed(id)
  local old = redis.call('GET', mark)
  if not old or later(id, old) then redis.call('SET', mark, id) end
end
local n = redis.call('XLEN', stream)
if n >= maxlen then
  local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', n - maxlen + 1)
  trimmed(gone[#gone][1])
  redis.call('XTRIM', stream, 'MAXLEN', maxlen - 1)
end
local id = redis.call('XADD', stream, '*', 'm', ARGV[3])
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - keep
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
if first and parse(first[1]) < cutoff then
  local last = redis.call('XREVRANGE', stream, '(' .. cutoff .. '-0', '-', 'COUNT', 1)[1]
  if last then trimmed(last[1]) end
  redis.call('XTRIM', stream, 'MINID', cutoff)
end
redis.call('PEXPIRE', stream, 2 * keep)
redis.call('PEXPIRE', mark, 2 * keep)
local message = '\\193' .. id .. ' ' .. ARGV[3]
for i = 5, #ARGV do redis.call(ARGV[4], ARGV[i], message) end
return id
"""
)

# The broadcasts after an offset and the newest id trimmed, read at one moment.
# KEYS: stream, trim mark. ARGV: the offset, the most entries.
_MISSED_SCRIPT = """
return {redis.call('GET', KEYS[2]) or false,
        redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))}
"""


def _entry_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _has_hash_tag(name: str) -> bool:
    """True: Redis Cluster hashes ``name`` by a tag, a non-empty ``{...}`` part."""
    start = name.find("{")
    return start >= 0 and name.find("}", start + 1) > start + 1


def _stream_id(offset: str) -> tuple[int, int] | None:
    ms, sep, seq = offset.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit() or len(offset) > 41:
        return None
    return int(ms), int(seq)


_FLUSH_CHUNK = 64  # buffered messages per pipeline when flushing


class RedisBroker(ClusterBroker):
    """A :class:`~tether.broker.cluster.ClusterBroker` on Redis pub/sub (redis-py asyncio).

    Args:
        url: the Redis URL (``redis://``, ``rediss://``, ``unix://``).
        prefix: the first part of every channel and key (the emitter's ``key``).
        node_id: this node's id (random when omitted).
        heartbeat_interval: seconds between liveness beats; a node expires after three.
        ping_interval: seconds between PINGs on the pub/sub connection.
        buffer_max_messages: capacity of the outage buffer, in messages.
        buffer_max_bytes: capacity of the outage buffer, in bytes.
        max_message_size: encoded messages above this raise PayloadTooBig (keep it well
            under Redis ``client-output-buffer-limit pubsub``).
        reconnect_min: first reconnect delay, doubled up to ``reconnect_max`` (jittered).
        reconnect_max: longest reconnect delay.
        socket_timeout: timeout of commands and of connecting.
        max_connections: Redis connections for commands (the pub/sub connection aside);
            a command waits for a free one (up to ``socket_timeout``) instead of failing,
            so a burst of publishes and replies is queued, not refused.
        **options: the options of :class:`~tether.broker.cluster.ClusterBroker`
            (``queue_size``, ``handler_timeout``, ``request_timeout``...).

    Raises:
        ImportError: ``redis`` or ``msgpack`` is not installed (``pip install
            'tether[redis]'``).
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "tether",
        node_id: str | None = None,
        heartbeat_interval: float = 2.0,
        ping_interval: float = 1.0,
        buffer_max_messages: int = 10_000,
        buffer_max_bytes: int = 16 * 1024 * 1024,
        max_message_size: int = 4 * 1024 * 1024,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        socket_timeout: float = 5.0,
        max_connections: int = 64,
        **options: Any,
    ) -> None:
        try:
            import msgpack  # type: ignore[import-untyped]  # noqa: F401
            import redis.asyncio  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "RedisBroker needs the redis and msgpack packages: pip install 'tether[redis]'"
            ) from exc
        check_positive(
            heartbeat_interval=heartbeat_interval,
            ping_interval=ping_interval,
            buffer_max_messages=buffer_max_messages,
            buffer_max_bytes=buffer_max_bytes,
            max_message_size=max_message_size,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            socket_timeout=socket_timeout,
            max_connections=max_connections,
        )
        options.setdefault("subscribe_timeout", max(socket_timeout, 1.0))
        super().__init__(prefix=prefix, node_id=node_id, **options)
        self.url = url
        self._max_connections = max_connections
        self.heartbeat_interval = heartbeat_interval
        self.node_ttl = 3 * heartbeat_interval
        self._ping_interval = ping_interval
        self._buffer_max_messages = buffer_max_messages
        self._buffer_max_bytes = buffer_max_bytes
        self._max_message_size = max_message_size
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._socket_timeout = socket_timeout
        self._nodes_key = f"{prefix}:nodes"

        self._redis: Any = None  # redis.asyncio.Redis, for commands
        self._conn: Any = None  # redis.asyncio.Connection, the pub/sub connection
        self._healthy = asyncio.Event()  # the pub/sub connection is fully subscribed
        self._ever_healthy = False
        self._tasks: list[asyncio.Task[None]] = []
        self._last_read = 0.0
        self._ping_sent = 0.0
        self._beat_now = asyncio.Event()
        self._outbox_wake = asyncio.Event()
        self._buffer: collections.deque[tuple[str, bytes]] = collections.deque()
        self._buffer_bytes = 0
        self._direct = True  # publishes may go straight to Redis
        self._peers: dict[str, float] = {}  # live nodes at the last beat, with expiry
        self._barrier: dict[str, float] = {}  # peers to wait for before flushing
        self._scripts: dict[str, Any] = {}  # redis-py Script objects by source
        # The newest durable broadcast read per namespace, and (while the log is read
        # after a reconnect) the durable broadcasts that arrive meanwhile.
        self._last_durable: dict[str, str] = {}
        # Durable broadcasts that arrive live from the loss of the pub/sub connection until
        # the recovery log has been read back (None: not catching up).
        self._catching_up: list[tuple[str, Broadcast]] | None = None
        self._catch_up_task: asyncio.Future[None] | None = None
        self._catch_up_again = False  # read the log (again) before delivering the queue

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> BrokerState:
        """``"connected"``, ``"reconnecting"``, ``"degraded"`` or ``"closed"``.

        ``reconnecting``: the pub/sub connection is down. ``degraded``: it is up but
        publishes still go to the outage buffer (being flushed, or waiting for peers).
        """
        if self._closed or not self._started:
            return "closed"
        if not self._healthy.is_set():
            return "reconnecting"
        if not self._direct or self._buffer:
            return "degraded"
        return "connected"

    def _liveness_check_interval(self) -> float:
        return self.heartbeat_interval / 2

    # ------------------------------------------------------------------ lifecycle

    async def _make_client(self) -> Any:
        """The client of commands (publishes, heartbeats, records)."""
        import redis.asyncio as aioredis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside redis-py: a failed command must fail at once so the outage
        # policy above (buffer, backoff, resubscribe) is the only one in play.
        # A blocking pool: past max_connections a command waits for a connection (bounded
        # by socket_timeout) rather than failing with "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=self._socket_timeout,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._socket_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it

    async def _transport_start(self) -> None:
        self._redis = await self._make_client()
        loop = asyncio.get_running_loop()
        for coro, name in (
            (self._supervise(), "pubsub"),
            (self._heartbeat(), "heartbeat"),
            (self._outbox(), "outbox"),
        ):
            self._tasks.append(loop.create_task(coro, name=f"tether-redis-{name}-{self.node_id}"))
        # Wait (bounded) for the first subscription so that a broadcast or request made
        # right after start() finds this node registered; later outages never block here.
        await wait_event(self._healthy, self._subscribe_timeout)

    async def _transport_stop(self, *, graceful: bool) -> None:
        reachable = self._healthy.is_set()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if graceful and self._redis is not None and reachable:
            # Redis answers: send what is buffered, then deregister, in one time bound.
            # (When it does not, closing does not wait for it: the node expires.)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._socket_timeout):
                    await self._final_flush()
                    await self._redis.zrem(self._nodes_key, self.node_id)
        self._healthy.clear()
        await self._drop_connection()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _final_flush(self) -> None:
        while self._buffer:
            await self._publish_now([self._buffer[0]])
            self._pop_buffered()

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    # ------------------------------------------------------------------ pub/sub connection

    def _new_pubsub_connection(self, pool: Any = None) -> Any:
        pool = pool if pool is not None else self._redis.connection_pool
        kwargs = dict(pool.connection_kwargs)
        # The reader blocks for as long as the channels are quiet; liveness comes from
        # the PINGs, not from a read timeout (redis-py 8's default read timeout is what
        # turned quiet subscriptions into reconnect loops for open-webui and dify).
        kwargs["socket_timeout"] = None
        # RESP2: pub/sub messages are plain replies to read_response (under RESP3 redis-py
        # routes them to a push handler of its PubSub class, which we do not use).
        kwargs["protocol"] = 2
        for key in ("maint_notifications_pool_handler", "maint_notifications_config"):
            kwargs.pop(key, None)  # redis-py 8: RESP3-only, and meant for pooled commands
        return pool.connection_class(**kwargs)

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closed:
            conn: Any = None
            try:
                conn = self._new_pubsub_connection()
                async with asyncio.timeout(self._socket_timeout):
                    await conn.connect()
                self._conn = conn
                self._last_read = self._ping_sent = time.monotonic()
                channels = sorted(self.channels)
                await self._send_subscribe(conn, [*channels, self._node_channel])
                if self._ever_healthy:
                    self.stats.reconnects += 1
                    self.stats.resubscribed += len(channels)
                    logger.info(
                        "redis pub/sub reconnected: %d channels subscribed again",
                        len(channels),
                    )
                reader = asyncio.ensure_future(self._read(conn))
                pinger = asyncio.ensure_future(self._ping(conn))
                try:
                    done, _ = await asyncio.wait(
                        {reader, pinger}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    await cancel_and_wait((reader, pinger))
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                raise ConnectionResetError("no answer to PING on the pub/sub connection")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._healthy.is_set():
                    attempt = 0
                    logger.warning("redis pub/sub connection lost: %r", exc)
                else:
                    logger.debug("redis pub/sub connection failed: %r", exc)
            finally:
                self._on_lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.disconnect()
            delay = min(self._reconnect_max, self._reconnect_min * 2**attempt)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    def _on_lost(self) -> None:
        self._healthy.clear()
        self._conn = None
        self._interest.lost()
        if self._ever_healthy and self._last_durable and self._catching_up is None:
            # From now until the log is read back, durable broadcasts that arrive live wait
            # in a queue: some channels are subscribed again before others (and, on a
            # cluster, before every shard is), and one delivered before the gap is filled
            # would move this node's position past what it missed.
            self._catching_up = []
        if not self._closed:
            # Publish nothing straight to Redis until we (and the peers) listen again.
            self._go_indirect()

    def _go_indirect(self) -> None:
        self._direct = False
        now = time.time()
        for node, expiry in self._peers.items():
            if node != self.node_id and expiry > now:
                self._barrier[node] = max(expiry, self._barrier.get(node, 0.0))
        self._outbox_wake.set()

    async def _send_subscribe(self, conn: Any, channels: list[str]) -> None:
        for start in range(0, len(channels), _SUBSCRIBE_CHUNK):
            await conn.send_command("SUBSCRIBE", *channels[start : start + _SUBSCRIBE_CHUNK])
            self.stats.subscribe_commands += 1

    async def _transport_subscribe(self, subscribe: list[str], unsubscribe: list[str]) -> None:
        conn = self._conn
        if conn is None:
            return  # the supervisor subscribes every channel of interest on connect
        if unsubscribe:
            for start in range(0, len(unsubscribe), _SUBSCRIBE_CHUNK):
                await conn.send_command(
                    "UNSUBSCRIBE", *unsubscribe[start : start + _SUBSCRIBE_CHUNK]
                )
                self.stats.subscribe_commands += 1
        if subscribe:
            await self._send_subscribe(conn, subscribe)

    async def _read(self, conn: Any) -> None:
        while True:
            response = await conn.read_response()
            self._last_read = time.monotonic()
            if not isinstance(response, list) or not response:
                continue
            kind = response[0]
            if kind == b"message":
                self._on_raw(response[1].decode(), response[2])
            elif kind == b"subscribe":
                channel = response[1].decode()
                self._confirmed(channel)
                if channel == self._node_channel:
                    self._on_healthy()

    def _on_healthy(self) -> None:
        if self._catching_up is not None:
            # Durable broadcasts published while this node was not subscribed are in the
            # recovery log: deliver them before what comes live from now on.
            self._catch_up_again = True
            if self._catch_up_task is None or self._catch_up_task.done():
                self._catch_up_task = asyncio.ensure_future(self._catch_up())
                self._tasks = [task for task in self._tasks if not task.done()]
                self._tasks.append(self._catch_up_task)
        self._healthy.set()
        self._ever_healthy = True
        self._beat_now.set()  # announce at once: peers may be waiting for us
        self._outbox_wake.set()

    async def _ping(self, conn: Any) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            if self._last_read < self._ping_sent:
                return  # the last PING had no answer: the connection is dead or wedged
            self._ping_sent = time.monotonic()
            await conn.send_command("PING")

    def _on_raw(self, channel: str, data: bytes) -> None:
        from . import wire

        info = self._channel_info(channel)
        self._count(info.kind if info else "unknown")
        if info is None:
            self.stats.irrelevant += 1
            return
        try:
            message: Broadcast | RemoteCommand | Envelope | None
            if info.kind == "node":
                node_message = wire.decode_node_message(data)
                if isinstance(node_message, NodeRequest):
                    self._incoming_request(node_message)
                else:
                    self._incoming_reply(node_message)
                return
            if info.kind in ("room", "namespace"):
                offset, data = wire.split_offset(data)
                message = wire.decode_broadcast(data, info.namespace)
                if offset is not None:
                    message = dataclasses.replace(message, offset=offset)
                    if self._catching_up is not None:
                        # Bounded like the incoming queue: past it, the log is read once
                        # more instead (what is dropped here is in it).
                        if len(self._catching_up) < self._queue_size:
                            self._catching_up.append((channel, message))
                        else:
                            self._catch_up_again = True
                        return
                    if not self._seen_offset(info.namespace, offset):
                        # Not past the position: a copy on another room channel, or
                        # read back from the log already.
                        self.stats.duplicates += 1
                        return
            elif info.kind == "request":
                message = wire.decode_command(data, info.namespace)
            else:
                message = wire.decode_envelope(data)
        except PacketError as exc:
            self.stats.decode_errors += 1
            logger.debug("undecodable message on %s: %s", channel, exc)
            return
        if message is None:
            self.stats.irrelevant += 1  # a socket.io request type tether does not handle
            return
        self._incoming(channel, message)

    def _seen_offset(self, namespace: str, offset: str) -> bool:
        """Move the position in ``namespace``'s log to ``offset``; False: it is not past
        the position (already delivered)."""
        last = self._last_durable
        known = last.get(namespace)
        if known is not None:
            before, now = _stream_id(known), _stream_id(offset)
            if before is not None and now is not None and now <= before:
                return False
        elif len(last) >= _MAX_LOGS_FOLLOWED:
            del last[next(iter(last))]
        last[namespace] = offset
        return True

    async def _catch_up(self) -> None:
        """After the pub/sub connection came back: the durable broadcasts this node
        missed meanwhile, from the recovery log, then those that arrived live while it
        was read (each once: what is not past the position was delivered already)."""
        try:
            while self._catch_up_again and not self._closed:
                self._catch_up_again = False
                for namespace, after in list(self._last_durable.items()):
                    try:
                        missed = await self.missed(namespace, after)
                    except Exception as exc:
                        logger.warning("recovery log of %s unreachable: %r", namespace, exc)
                        continue
                    if missed is None:
                        logger.warning(
                            "%s: broadcasts missed during the outage were trimmed", namespace
                        )
                        continue
                    channel = namespace_channel(self.prefix, namespace)
                    for message in missed:
                        assert message.offset is not None
                        if self._seen_offset(namespace, message.offset):
                            self.stats.caught_up += 1
                            self._incoming(channel, message)
        finally:
            queued, self._catching_up = self._catching_up or [], None
            for channel, message in queued:
                assert message.offset is not None
                if self._seen_offset(message.namespace, message.offset):
                    self._incoming(channel, message)
            if not self._healthy.is_set() and not self._closed and self._last_durable:
                self._catching_up = []  # lost again meanwhile: read back again on reconnect

    # ------------------------------------------------------------------ liveness

    async def _heartbeat(self) -> None:
        beats = 0
        while not self._closed:
            if self._healthy.is_set():
                now = time.time()
                try:
                    pipe = self._redis.pipeline(transaction=False)
                    pipe.zadd(self._nodes_key, {self.node_id: now + self.node_ttl})
                    pipe.zrangebyscore(self._nodes_key, now, "+inf", withscores=True)
                    if beats % 10 == 0:
                        pipe.zremrangebyscore(self._nodes_key, "-inf", now - self.node_ttl)
                    results = await pipe.execute()
                    self._peers = {node.decode(): score for node, score in results[1]}
                    beats += 1
                except Exception as exc:
                    logger.debug("heartbeat failed: %r", exc)
            self._beat_now.clear()
            await wait_event(self._beat_now, self.heartbeat_interval)

    async def _transport_live(self, nodes: Collection[str] | None = None) -> dict[str, float]:
        now = time.time()
        try:
            if nodes is None:
                found = await self._redis.zrangebyscore(
                    self._nodes_key, now, "+inf", withscores=True
                )
                live = {node.decode(): score for node, score in found}
                self._peers = dict(live)  # also the view the outage barrier starts from
            else:
                wanted = sorted(nodes)
                scores = await self._redis.zmscore(self._nodes_key, wanted) if wanted else []
                live = {
                    n: s for n, s in zip(wanted, scores, strict=True) if s is not None and s > now
                }
                self._peers.update(live)
        except Exception:
            # Redis is unreachable: the last beat's view, minus what expired since.
            live = {
                n: s for n, s in self._peers.items() if s > now and (nodes is None or n in nodes)
            }
        if nodes is None or self.node_id in nodes:
            live.setdefault(self.node_id, now + self.node_ttl)
        return live

    # ------------------------------------------------------------------ publishing

    def _encoded(self, data: bytes) -> bytes:
        if len(data) > self._max_message_size:
            raise PayloadTooBig(
                f"{len(data)} bytes to publish, over max_message_size={self._max_message_size}"
            )
        return data

    async def _transport_broadcast(self, channels: list[str], message: Broadcast) -> None:
        from . import wire

        data = self._encoded(wire.encode_broadcast(message))
        await self._publish([(channel, data) for channel in channels])

    async def _transport_envelope(self, channel: str, envelope: Envelope) -> None:
        from . import wire

        data = self._encoded(wire.encode_envelope(envelope))
        await self._publish([(envelope_channel(self.prefix, channel), data)])

    async def _transport_request(self, nodes: list[str], request: NodeRequest) -> list[str]:
        from . import wire

        data = self._encoded(wire.encode_request(request))
        items = [(node_channel(self.prefix, node), data) for node in nodes]
        try:
            await self._publish_now(items)
        except Exception as exc:
            logger.warning("request %s not sent: %r", request.kind, exc)
            return list(nodes)
        return []

    async def _transport_reply(self, node: str, reply: Reply) -> None:
        from . import wire

        data = wire.encode_reply(reply)
        if len(data) > self._max_message_size:
            data = wire.encode_reply(
                Reply(reply.request_id, reply.node_id, False, error="reply too big")
            )
        await self._publish_now([(node_channel(self.prefix, node), data)])

    _PUBLISH = "PUBLISH"
    _SHARDED = False  # keys and channels spread over the hash slots of a cluster

    async def _publish_now(self, items: list[tuple[str, bytes]]) -> None:
        if len(items) == 1 and items[0][0] != _DURABLE:
            await self._redis.execute_command(self._PUBLISH, *items[0])
        else:
            pipe = self._redis.pipeline(transaction=False)
            for channel, data in items:
                if channel == _DURABLE:
                    await self._durable_call(data, pipe)
                else:
                    pipe.execute_command(self._PUBLISH, channel, data)
            await pipe.execute()
        self.stats.published += len(items)

    # ------------------------------------------------------------------ recovery log

    @property
    def durable(self) -> bool:
        """True: the recovery log is a Redis stream per namespace, and session records
        are Redis keys (see :meth:`ClusterBroker.broadcast`)."""
        return True

    def _stream_keys(self, namespace: str) -> tuple[str, str]:
        """The recovery log's keys, in the hash slot of the namespace channel (a Redis
        Cluster runs the durable script, which publishes on that channel, on the shard
        that holds both).

        Raises:
            ValueError: on a Redis Cluster, no key can share the channel's slot (the
                channel has no hash tag, ``{...}``, but holds a ``}``).
        """
        channel = namespace_channel(self.prefix, namespace)
        if _has_hash_tag(channel):
            stream = channel + ":log"  # the channel's own tag places the keys
        elif "}" in channel and self._SHARDED:
            raise ValueError(
                f"namespace {namespace!r} with prefix {self.prefix!r}: its channel holds a"
                " '}' but no hash tag (braces around something), so no recovery log key"
                " can share its Redis Cluster slot"
            )
        else:
            stream = "{" + channel + "}:log"
        return stream, stream + ":trimmed"

    def _durable_channels(self, namespace: str, channels: list[str]) -> list[str]:
        """The channels a durable broadcast is published on (its room channels here)."""
        return channels

    def _session_key(self, pid: str) -> str:
        return f"{self.prefix}:session:{pid}"

    async def _transport_durable_broadcast(self, channels: list[str], message: Broadcast) -> None:
        from . import wire

        self._stream_keys(message.namespace)  # raises here rather than in the outbox
        data = self._encoded(wire.encode_broadcast(message))
        # The buffer item carries what the script needs (namespace and channels first).
        channels = self._durable_channels(message.namespace, channels)
        item = wire._pack([message.namespace, channels, data])
        await self._publish([(_DURABLE, item)])

    async def _durable_call(self, item: bytes, pipe: Any = None) -> Any:
        # (On a pipeline, redis-py's script call only queues EVALSHA, but is a coroutine.)
        from . import wire

        namespace, channels, data = wire._unpack(item)
        stream, mark = self._stream_keys(namespace)
        keep_ms = int(self._log_retention * 1000)
        return await self._script(_DURABLE_SCRIPT)(
            keys=[stream, mark],
            args=[self._log_max_packets, keep_ms, data, self._PUBLISH, *channels],
            client=pipe,
        )

    def _script(self, source: str) -> Any:
        scripts = self._scripts
        if source not in scripts:
            scripts[source] = self._redis.register_script(source)
        return scripts[source]

    async def save_sessions(self, records: Sequence[SessionRecord], ttl: float) -> None:
        from . import wire

        self._check_open()
        if not records:
            return
        newest: dict[str, str] = {}
        unplaced = sorted({r.namespace for r in records if r.position is None})
        if unplaced:
            pipe = self._redis.pipeline(transaction=False)
            for namespace in unplaced:
                pipe.xrevrange(self._stream_keys(namespace)[0], "+", "-", count=1)
            for namespace, last in zip(unplaced, await pipe.execute(), strict=True):
                newest[namespace] = _entry_id(last[0][0]) if last else "0-0"
        ttl_ms = max(1, int(ttl * 1000))
        pipe = self._redis.pipeline(transaction=False)
        for record in records:
            try:
                data = wire.encode_session(record)
            except TypeError as exc:
                logger.warning("socket %s: data not kept for recovery: %s", record.sid, exc)
                data = wire.encode_session(dataclasses.replace(record, data={}))
            key = self._session_key(record.pid)
            pipe.hset(key, "r", data)
            if record.position is not None:
                pipe.hset(key, "p", record.position)
            else:  # keep the position known, else the log's newest offset
                pipe.hsetnx(key, "p", newest[record.namespace])
            pipe.pexpire(key, ttl_ms)
        await pipe.execute()
        self.stats.sessions_saved += len(records)

    async def delete_sessions(self, pids: Sequence[str]) -> None:
        self._check_open()
        if pids:
            await self._redis.delete(*(self._session_key(pid) for pid in pids))

    async def peek_session(self, pid: str) -> SessionRecord | None:
        from ..exceptions import PacketError
        from . import wire

        self._check_open()
        data, position = await self._redis.hmget(self._session_key(pid), "r", "p")
        if data is None:
            return None
        try:
            return wire.decode_session(data, position.decode() if position else None)
        except PacketError as exc:
            logger.warning("undecodable session record %s: %s", pid, exc)
            return None

    async def take_session(self, pid: str) -> bool:
        self._check_open()
        return bool(await self._redis.delete(self._session_key(pid)))

    async def missed(self, namespace: str, after: str) -> list[Broadcast] | None:
        from ..exceptions import PacketError
        from . import wire

        self._check_open()
        start = _stream_id(after)
        if start is None:
            return None
        stream, mark = self._stream_keys(namespace)
        trimmed, entries = await self._script(_MISSED_SCRIPT)(
            keys=[stream, mark], args=[after, self._log_max_packets]
        )
        if trimmed:
            newest_gone = _stream_id(trimmed.decode())
            if newest_gone is not None and newest_gone >= start:
                return None  # something after ``after`` is gone
        result: list[Broadcast] = []
        for entry_id, fields in entries:
            # XRANGE through EVAL: each entry is [id, [field, value, ...]].
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            try:
                message = wire.decode_broadcast(values[b"m"], namespace)
            except (PacketError, KeyError):
                self.stats.decode_errors += 1
                continue
            result.append(dataclasses.replace(message, offset=_entry_id(entry_id)))
        return result

    async def node_listening(self, node: str) -> bool:
        self._check_open()
        channel = node_channel(self.prefix, node)
        return (await self._numsub([channel])).get(channel, 0) > 0

    async def _numsub(self, channels: list[str]) -> dict[str, int]:
        """How many connections subscribe each channel."""
        counts = await self._redis.pubsub_numsub(*channels)
        return {_entry_id(name): int(count) for name, count in counts}

    async def _publish(self, items: list[tuple[str, bytes]]) -> None:
        self._check_open()
        if self._direct and not self._buffer:
            try:
                await self._publish_now(items)
                return
            except Exception as exc:
                logger.warning("redis publish failed, buffering: %r", exc)
                if self._direct:
                    self._go_indirect()
        self._buffer_add(items)

    def _buffer_add(self, items: list[tuple[str, bytes]]) -> None:
        size = sum(len(data) for _, data in items)
        if (
            len(self._buffer) + len(items) > self._buffer_max_messages
            or self._buffer_bytes + size > self._buffer_max_bytes
        ):
            self.stats.buffer_rejected += 1
            raise BufferFull(
                f"Redis is unreachable and the outage buffer is full ({len(self._buffer)} "
                f"messages, {self._buffer_bytes} bytes)"
            )
        self._buffer.extend(items)
        self._buffer_bytes += size
        self.stats.buffered = len(self._buffer)
        self.stats.buffered_bytes = self._buffer_bytes
        self.stats.buffered_total += len(items)
        self._outbox_wake.set()

    def _pop_buffered(self) -> None:
        _, data = self._buffer.popleft()
        self._buffer_bytes -= len(data)
        self.stats.buffered = len(self._buffer)
        self.stats.buffered_bytes = self._buffer_bytes

    async def _outbox(self) -> None:
        attempt = 0
        while not self._closed:
            await self._outbox_wake.wait()
            self._outbox_wake.clear()
            while not self._direct and not self._closed:
                await self._healthy.wait()
                await self._wait_for_peers()
                try:
                    while self._buffer:
                        batch = list(itertools.islice(self._buffer, _FLUSH_CHUNK))
                        await self._publish_now(batch)
                        for _ in batch:
                            self._pop_buffered()
                except Exception as exc:
                    logger.debug("flushing the outage buffer failed: %r", exc)
                    delay = min(self._reconnect_max, self._reconnect_min * 2**attempt)
                    attempt = min(attempt + 1, 30)
                    await asyncio.sleep(delay * (0.5 + random.random() / 2))
                    continue
                attempt = 0
                if self._healthy.is_set():
                    self._direct = True
                    if self.stats.buffered_total:
                        logger.info("redis outage buffer flushed")

    async def _wait_for_peers(self) -> None:
        """Wait until every peer of the barrier is subscribed again or has expired.

        A peer alive when the outage began gets a full ``node_ttl`` from now (Redis is
        back) to resubscribe: its heartbeat could not be refreshed while Redis was down,
        so the expiry it had then says nothing about whether it is dead.
        """
        grace = time.time() + self.node_ttl
        for node in self._barrier:
            self._barrier[node] = max(self._barrier[node], grace)
        while self._barrier:
            now = time.time()
            for node in [n for n, expiry in self._barrier.items() if expiry <= now]:
                del self._barrier[node]
            if not self._barrier:
                return
            nodes = sorted(self._barrier)
            try:
                counts = await self._numsub([node_channel(self.prefix, n) for n in nodes])
            except Exception:
                counts = {}
            for name, count in counts.items():
                node = name[len(self.prefix) + len("#node#") : -1]
                if count > 0:
                    self._barrier.pop(node, None)
            if self._barrier:
                await asyncio.sleep(min(0.05, self.heartbeat_interval / 4))
