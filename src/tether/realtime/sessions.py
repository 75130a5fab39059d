"""Connection-state recovery across the cluster: session records and the shared log.

With a broker that keeps a recovery log (:attr:`ClusterBroker.durable`, the Redis
broker: one stream per namespace), a client recovers on whichever node it reconnects
to, including after its node was killed:

- **Broadcasts** that recovery replays (not volatile, not under the ``drop`` policy) are
  *durable*: the emitting node does not deliver them itself; the broker appends them to
  the namespace's log and publishes them with their log offset in one step, and every
  node (the emitter's included) delivers them as they come back. The log and every
  socket then see one order, so "after offset X" means the same thing on every node.
- **Session records** (sid, pid, rooms, data, position) are written while the socket
  lives: when it connects, when its rooms change (coalesced per loop turn), and every
  ``refresh_interval`` seconds (which also renews their expiry), by one writer per hub
  so a later write never lands before an earlier one. A socket that disconnects (not on
  purpose) gets its final record, kept ``max_disconnection_duration`` seconds; one that
  leaves on purpose has its record deleted. A node killed with ``kill -9`` leaves the
  records of its last refresh, which expire ``max_disconnection_duration`` plus at most
  two refresh intervals after it died.
- **Recovery**: the node the client reconnects to reads the record of its ``pid``;
  a record still marked connected is usable only if its node is gone (not listening on
  the broker any more) -- a node that is alive still holds the socket. It then joins the
  socket's rooms (waiting for the subscriptions), reads the broadcasts after the
  client's offset (or the record's position when the client has none) from the log,
  and takes the record (deleted: a session is recovered once). Broadcasts that arrive
  while the log is being read are held and sent after the replay, without repeats.
  A client whose missed broadcasts were trimmed from the log (``max_packets``, or older
  than the retention), whose record expired, or whose data Redis lost, gets a new
  session (``recovered`` false).

The position of a socket is the newest offset this node had delivered to it when its
outbox was empty (so everything up to it reached the socket or was not meant for it);
it matters only for a client that received no broadcast at all (it sends no offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..broker import Broadcast, ClusterBroker, SessionRecord
from .recovery import Recovery

if TYPE_CHECKING:
    from .hub import Hub
    from .namespace import Namespace
    from .socket import Socket

__all__ = ["SharedRecovery"]

logger = logging.getLogger("tether.realtime")

# Broadcasts are kept this much longer than sessions: one emitted just before a
# disconnect and missed by it must outlive the session record that points at it.
_RETENTION_MARGIN = 30.0
_WRITE_BATCH = 512  # records per pipeline


class SharedRecovery:
    """The hub's side of cluster-wide connection-state recovery (see the module doc).

    Args:
        hub: the hub.
        options: its recovery options.
        broker: a broker whose :attr:`~ClusterBroker.durable` is true.
    """

    def __init__(self, hub: Hub, options: Recovery, broker: ClusterBroker) -> None:
        self.hub = hub
        self.options = options
        self.broker = broker
        duration = options.max_disconnection_duration
        broker.set_recovery_limits(
            max_packets=options.max_packets, retention=duration + _RETENTION_MARGIN
        )
        #: Seconds between the refreshes of every live socket's record.
        self.refresh_interval = max(0.5, min(30.0, duration / 6))
        # pid -> (record, ttl) to write, or None to delete; one writer drains it in order.
        self._pending: dict[str, tuple[SessionRecord, float] | None] = {}
        self._writer: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ writing

    def _live_ttl(self) -> float:
        return self.options.max_disconnection_duration + 2 * self.refresh_interval

    def _record(self, socket: Socket, connected: bool) -> SessionRecord | None:
        assert socket.pid is not None
        return SessionRecord(
            pid=socket.pid,
            sid=socket.sid,
            namespace=socket.namespace.name,
            node=self.broker.node_id,
            rooms=tuple(sorted(socket.namespace.adapter.rooms_of(socket.sid))),
            data=socket.data,
            position=socket._position,
            connected=connected,
        )

    def touch(self, socket: Socket) -> None:
        """Write ``socket``'s record soon (it connected, or its rooms changed)."""
        if socket.pid is None or self._closed:
            return
        if not socket.connected:
            return  # its final record is written by :meth:`store`
        record = self._record(socket, True)
        if record is not None:
            self._queue(record.pid, (record, self._live_ttl()))

    def store(self, socket: Socket) -> None:
        """``socket`` disconnected, not on purpose: keep its final record (its rooms are
        read now, before it leaves them)."""
        if socket.pid is None:
            return
        record = self._record(socket, False)
        if record is not None:
            self._queue(record.pid, (record, self.options.max_disconnection_duration))

    def forget(self, socket: Socket) -> None:
        """``socket`` left on purpose: its session is not recoverable."""
        if socket.pid is not None:
            self._queue(socket.pid, None)

    def _queue(self, pid: str, entry: tuple[SessionRecord, float] | None) -> None:
        self._pending.pop(pid, None)  # to the end: written after what was queued before
        self._pending[pid] = entry
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), name="tether-sessions-writer"
            )
        if self._refresher is None and not self._closed:
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh(), name="tether-sessions-refresh"
            )

    async def _write(self) -> None:
        await asyncio.sleep(0)  # coalesce what this loop turn queues
        while self._pending:
            batch: list[tuple[str, tuple[SessionRecord, float] | None]] = []
            while self._pending and len(batch) < _WRITE_BATCH:
                pid = next(iter(self._pending))
                batch.append((pid, self._pending.pop(pid)))
            try:
                await self._send(batch)
            except Exception as exc:
                # The broker is unreachable: write them again (what was queued since
                # for the same socket is newer and wins).
                logger.warning("session records not written: %r", exc)
                for pid, entry in batch:
                    self._pending.setdefault(pid, entry)
                if self._closed:
                    return
                await asyncio.sleep(self.refresh_interval)

    async def _send(self, batch: list[tuple[str, tuple[SessionRecord, float] | None]]) -> None:
        deletes = [pid for pid, entry in batch if entry is None]
        by_ttl: dict[float, list[SessionRecord]] = {}
        for _, entry in batch:
            if entry is not None:
                by_ttl.setdefault(entry[1], []).append(entry[0])
        for ttl, records in by_ttl.items():
            await self.broker.save_sessions(records, ttl)
        if deletes:
            await self.broker.delete_sessions(deletes)

    async def _refresh(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.refresh_interval)
            for ns in list(self.hub._namespaces.values()):
                position = ns._last_offset
                for socket in list(ns.sockets.values()):
                    if position is not None and not socket.client.session.outbox:
                        socket._position = position
                    self.touch(socket)

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the queued writes."""
        writer = self._writer
        if writer is not None and not writer.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (final records of the sockets that disconnected), at
        most ``timeout`` seconds, and stop."""
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.flush(timeout)
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # ------------------------------------------------------------------ recovering

    async def restore(
        self, ns: Namespace, auth: dict[str, Any]
    ) -> tuple[SessionRecord, str] | None:
        """The record of a reconnecting client's ``auth`` (``pid``, ``offset``) and the
        offset to replay from, if it can recover; the record is taken (deleted).

        Never raises: a broker that fails means no recovery (logged).
        """
        pid = auth.get("pid")
        offset = auth.get("offset")
        if not isinstance(pid, str) or not pid:
            return None
        try:
            if pid in self._pending:
                await self.flush(self.broker.request_timeout)
            record = await self.broker.peek_session(pid)
            if record is None or record.namespace != ns.name:
                self._not_recovered(ns, pid, "no session record")
                return None
            if record.connected and (
                _held_here(ns, pid)
                if record.node == self.broker.node_id
                else await self.broker.node_listening(record.node)
            ):
                # Its node is alive and still holds the socket. (A record of this node's
                # id that no socket here holds is from an earlier process with that id.)
                self._not_recovered(ns, pid, f"still connected on {record.node}")
                return None
            after = offset if isinstance(offset, str) and offset else record.position
            if after is None:
                self._not_recovered(ns, pid, "no offset")
                return None
            if not await self.broker.take_session(pid):
                self._not_recovered(ns, pid, "taken by another node")
                return None
        except Exception as exc:
            logger.warning("session %s not recovered: %r", pid, exc)
            return None
        return record, after

    def _not_recovered(self, ns: Namespace, pid: str, why: str) -> None:
        self.broker.stats.sessions_not_recovered += 1
        logger.debug("%s: session %s not recovered: %s", ns.name, pid, why)
        return None

    async def replay(
        self, ns: Namespace, socket: Socket, record: SessionRecord, after: str
    ) -> list[list[str | bytes]] | None:
        """Join the recovered socket's rooms, then gather what it missed after ``after``
        (the log, then what arrived while it was read), encoded; None when the log
        has lost some of it (the socket is then out of its rooms again).

        ``socket`` is not yet among ``ns.sockets``: broadcasts meant for it are held
        from the moment its rooms are joined until the caller sends the replay.
        """
        held: list[tuple[str, list[str | bytes]]] = []
        ns._held[socket.sid] = held
        waits: list[Awaitable[bool]] = ns.adapter.join(socket.sid, [socket.sid, *record.rooms])
        try:
            if waits:
                await asyncio.wait(
                    [asyncio.ensure_future(w) for w in waits],
                    timeout=self.broker._subscribe_timeout,
                )
            missed = await self.broker.missed(ns.name, after)
        except Exception as exc:
            logger.warning("session %s: the recovery log is unreachable: %r", record.pid, exc)
            missed = None
        finally:
            ns._held.pop(socket.sid, None)
        if len(held) > self.options.max_packets:
            missed = None  # more arrived during the replay than the log would keep
        if missed is None:
            ns.adapter.leave_all(socket.sid)
            self._not_recovered(ns, record.pid, "missed broadcasts were trimmed")
            return None
        rooms = set(record.rooms)
        out: list[list[str | bytes]] = []
        last = after
        for message in missed:
            if _meant_for(message, rooms) and message.event is not None:
                out.append(ns._encode_offset(message.event, list(message.args), message.offset))
            if message.offset is not None:
                last = message.offset
        newest = _sort_key(last)
        for offset, pieces in held:
            if _sort_key(offset) > newest:
                out.append(pieces)
        self.broker.stats.sessions_recovered += 1
        return out


def _held_here(ns: Namespace, pid: str) -> bool:
    return any(socket.pid == pid for socket in ns.sockets.values())


def _meant_for(message: Broadcast, rooms: set[str]) -> bool:
    if message.rooms and rooms.isdisjoint(message.rooms):
        return False
    return rooms.isdisjoint(message.except_rooms)


def _sort_key(offset: str | None) -> tuple[int, int]:
    if offset is None:
        return (-1, -1)
    ms, _, seq = offset.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (-1, -1)
