"""Connection-state recovery: the log of broadcasts and the state of disconnected sockets.

A socket that disconnects (not on purpose) is stored with its rooms and data for
``max_disconnection_duration``; a client that reconnects with its ``pid`` and the offset
of the last broadcast it saw gets its state back and the broadcasts it missed.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from .packets import encode_event

__all__ = ["Recovery", "RecoveryLog"]


@dataclass(frozen=True, slots=True)
class Recovery:
    """Connection-state recovery options (compatible with the official client).

    Attributes:
        max_disconnection_duration: seconds a disconnected socket's state is kept.
        skip_middlewares: skip the middlewares when a session is recovered.
        max_packets: the most broadcast packets kept for replay (oldest dropped first).
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_packets: int = 10_000


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
    event: str
    args: list[Any]
    rooms: frozenset[str]
    except_rooms: frozenset[str]
    offset: str


class RecoveryLog:
    """The recovery state of one namespace (bounded: ``max_packets`` broadcasts).

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
        self._stored: dict[str, StoredSocket] = {}

    def record(self, event: str, args: list[Any], rooms: Set[str], except_rooms: Set[str]) -> str:
        """Log a broadcast; returns its offset (sent to the clients as the last argument)."""
        position = self._base + len(self._log)
        offset = f"{self._prefix}-{position}"
        self._log.append(_Entry(event, args, frozenset(rooms), frozenset(except_rooms), offset))
        self._index[offset] = position
        self._expire(time.monotonic())
        while len(self._log) > self.options.max_packets:
            old = self._log.popleft()
            self._index.pop(old.offset, None)
            self._base += 1
        return offset

    def _expire(self, now: float) -> None:
        for key in [k for k, v in self._stored.items() if v.expires < now]:
            del self._stored[key]

    @property
    def stored(self) -> int:
        """How many disconnected sockets' sessions are kept for recovery now."""
        self._expire(time.monotonic())
        return len(self._stored)

    def store(self, sid: str, pid: str, rooms: set[str], data: dict[str, Any]) -> None:
        """Keep a disconnected socket's state for ``max_disconnection_duration``."""
        expires = time.monotonic() + self.options.max_disconnection_duration
        self._stored[pid] = StoredSocket(sid, pid, rooms, data, expires)

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
        for entry in list(self._log)[index - self._base + 1 :]:
            if entry.rooms and not entry.rooms & stored.rooms:
                continue
            if entry.except_rooms & stored.rooms:
                continue
            missed.append(encode_event(self.namespace, entry.event, [*entry.args, entry.offset]))
        return stored, missed
