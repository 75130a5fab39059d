"""Connection-state recovery: the log of broadcasts and the state of disconnected sockets.

A socket that disconnects (not on purpose) is stored with its rooms and data for
``max_disconnection_duration``; a client that reconnects with its ``pid`` and the offset
of the last broadcast it saw gets its state back and the broadcasts it missed.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

__all__ = ["Recovery", "RecoveryLog"]


@dataclass(frozen=True, slots=True)
class Recovery:
    """Connection-state recovery options (compatible with the official client).

    Attributes:
        max_disconnection_duration: seconds a disconnected socket's state is kept (then
            freed by a timer, whether or not anything is broadcast).
        skip_middlewares: skip the middlewares when a session is recovered.
        max_packets: the most broadcast packets kept for replay (oldest dropped first).
        max_bytes: the most bytes of encoded broadcast packets kept for replay, per
            namespace (oldest dropped first; this node's log only: a shared log is
            bounded by ``max_packets`` and time). A client whose missed packets were
            dropped does not recover: it gets a new session (``recovered`` false).
        shared: with a broker that keeps a recovery log shared by the cluster
            (:class:`~tether.broker.RedisBroker`), keep the sessions and the missed
            broadcasts there, so a client recovers on any node, even after its node
            was killed (see :mod:`tether.realtime.sessions`). False keeps them on each
            node (a client recovers only on the node it left).
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_packets: int = 10_000
    max_bytes: int = 32 * 2**20
    shared: bool = True


@dataclass(slots=True)
class StoredSocket:
    """A disconnected socket's state, kept for recovery."""

    sid: str
    pid: str
    rooms: set[str]
    data: dict[str, Any]
    expires: float


@dataclass(frozen=True, slots=True)
class _Entry:
    pieces: list[str | bytes]
    rooms: frozenset[str]
    except_rooms: frozenset[str]
    offset: str
    size: int


class RecoveryLog:
    """The recovery state of one namespace (bounded: ``max_packets`` broadcasts and
    ``max_bytes`` of them; stored sockets expire on a timer).

    Args:
        options: the recovery options.
        namespace: the namespace name (replayed packets are encoded for it).
        offset_prefix: makes this node's offsets unique across restarts.
    """

    def __init__(self, options: Recovery, namespace: str, offset_prefix: str) -> None:
        self.options = options
        self.namespace = namespace
        self._prefix = offset_prefix
        self._log: collections.deque[_Entry] = collections.deque()
        self._index: dict[str, int] = {}
        self._base = 0
        self._bytes = 0
        # Insertion-ordered: every state is kept for the same duration, so the oldest
        # expires first and expiring costs only what expires.
        self._stored: dict[str, StoredSocket] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        """The bytes of encoded packets kept for replay."""
        return self._bytes

    def next_offset(self) -> str:
        """The offset the next :meth:`record` takes (it goes inside the packet)."""
        return f"{self._prefix}-{self._base + len(self._log)}"

    def record(
        self, offset: str, pieces: list[str | bytes], rooms: Set[str], except_rooms: Set[str]
    ) -> None:
        """Log a broadcast, encoded (``pieces``, which carry ``offset``, from
        :meth:`next_offset`); the oldest go past ``max_packets`` or ``max_bytes``."""
        size = sum(len(piece) for piece in pieces) + 64
        self._index[offset] = self._base + len(self._log)
        self._log.append(_Entry(pieces, frozenset(rooms), frozenset(except_rooms), offset, size))
        self._bytes += size
        options = self.options
        while self._log and (
            len(self._log) > options.max_packets or self._bytes > options.max_bytes
        ):
            old = self._log.popleft()
            self._index.pop(old.offset, None)
            self._bytes -= old.size
            self._base += 1

    def _expire(self, now: float) -> None:
        stored = self._stored
        while stored:
            pid, state = next(iter(stored.items()))
            if state.expires >= now:
                break
            del stored[pid]

    def _on_timer(self) -> None:
        self._timer = None
        self._expire(time.monotonic())
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None or not self._stored:
            return
        first = next(iter(self._stored.values()))
        delay = max(0.0, first.expires - time.monotonic()) + 0.01
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def close(self) -> None:
        """Forget every stored state and stop the timer (the hub is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stored.clear()

    @property
    def stored(self) -> int:
        """How many disconnected sockets' sessions are kept for recovery now."""
        self._expire(time.monotonic())
        return len(self._stored)

    def store(self, sid: str, pid: str, rooms: set[str], data: dict[str, Any]) -> None:
        """Keep a disconnected socket's state for ``max_disconnection_duration`` (a
        timer frees it then)."""
        expires = time.monotonic() + self.options.max_disconnection_duration
        self._stored.pop(pid, None)  # to the end: the order stays the expiry order
        self._stored[pid] = StoredSocket(sid, pid, rooms, data, expires)
        self._arm()

    def restore(self, auth: dict[str, Any]) -> tuple[StoredSocket, list[list[str | bytes]]] | None:
        """The stored state and the missed broadcasts (encoded) for a reconnecting
        client's ``auth`` (``pid`` and ``offset``), or None when it cannot recover."""
        pid = auth.get("pid")
        offset = auth.get("offset")
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None
        self._expire(time.monotonic())
        stored = self._stored.pop(pid, None)
        if stored is None:
            return None
        index = self._index.get(offset)
        if index is None:
            return None
        missed: list[list[str | bytes]] = []
        for entry in itertools.islice(self._log, index - self._base + 1, None):
            if entry.rooms and not entry.rooms & stored.rooms:
                continue
            if entry.except_rooms & stored.rooms:
                continue
            missed.append(entry.pieces)
        return stored, missed
