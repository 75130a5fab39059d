"""The room index of a namespace: which sockets are in which rooms (this node).

Socket.IO calls this the adapter. It is the seam a cluster broker plugs into: the
namespace asks the adapter for room membership and never walks the rooms itself;
:class:`~tether.realtime.cluster.ClusterAdapter` extends it to declare this node's
room interest to the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator, Iterable, Set
from typing import Any

__all__ = ["LocalAdapter", "RoomChange"]


class RoomChange:
    """What :meth:`Socket.join` returns: usable as is (sync), or awaited.

    The local room index changes at once, so local broadcasts see the new member
    immediately. Awaiting it also waits until the broker confirmed the subscription of
    every room that got its first local member (at most the broker's
    ``subscribe_timeout``), after which a broadcast to the room from any node reaches
    this socket.
    """

    __slots__ = ("_waits",)

    def __init__(self, waits: Iterable[Awaitable[Any]] = ()) -> None:
        self._waits = [asyncio.ensure_future(w) for w in waits]

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait().__await__()

    async def _wait(self) -> None:
        if self._waits:
            await asyncio.wait(self._waits)


class LocalAdapter:
    """Room membership of the sockets on this node, indexed both ways."""

    __slots__ = ("_rooms", "_socket_rooms")

    def __init__(self) -> None:
        self._rooms: dict[str, set[str]] = {}
        self._socket_rooms: dict[str, set[str]] = {}

    def rooms_of(self, sid: str) -> set[str]:
        """The rooms ``sid`` is in (a copy)."""
        return set(self._socket_rooms.get(sid, ()))

    def members(self, room: str) -> Set[str]:
        """The sids in ``room`` (read-only view; empty for an unknown room)."""
        return self._rooms.get(room, frozenset())

    @property
    def rooms(self) -> dict[str, set[str]]:
        """Every room with members, by name (a copy)."""
        return {room: set(sids) for room, sids in self._rooms.items()}

    def join(self, sid: str, rooms: Iterable[str]) -> list[Awaitable[bool]]:
        """Add ``sid`` to ``rooms``.

        Returns:
            What to await for the change to be effective on every node (nothing here;
            :class:`~tether.realtime.cluster.ClusterAdapter` returns the broker's
            interest confirmations).
        """
        mine = self._socket_rooms.setdefault(sid, set())
        for room in rooms:
            mine.add(room)
            self._rooms.setdefault(room, set()).add(sid)
        return []

    def leave(self, sid: str, rooms: Iterable[str]) -> None:
        """Remove ``sid`` from ``rooms``; a room without members is forgotten."""
        mine = self._socket_rooms.get(sid)
        for room in rooms:
            if mine is not None:
                mine.discard(room)
            members = self._rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self._rooms[room]

    def leave_all(self, sid: str) -> None:
        """Remove ``sid`` from every room."""
        self.leave(sid, list(self._socket_rooms.get(sid, ())))
        self._socket_rooms.pop(sid, None)

    def match(self, rooms: Set[str], except_rooms: Set[str], everyone: Set[str]) -> set[str]:
        """The sids in any of ``rooms`` (``everyone`` when empty) and in none of
        ``except_rooms``."""
        if rooms:
            sids: set[str] = set()
            for room in rooms:
                sids |= self._rooms.get(room, set())
        else:
            sids = set(everyone)
        for room in except_rooms:
            sids -= self._rooms.get(room, set())
        return sids
