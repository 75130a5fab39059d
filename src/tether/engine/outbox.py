"""What a session holds for a client that cannot take it yet, and what happens when that
client falls behind: a declared slow-consumer policy.

A session writes straight to its transport while the transport takes it (the WebSocket
under its high-water mark, a polling GET waiting). Only what the client cannot take now
waits in the session's :class:`Outbox`, which is capped in bytes (``max_buffered_bytes``)
and in messages (``max_buffered_packets``). Each message carries the policy it was sent
with (chosen per emit, else the namespace's, else the server's):

``"wait"``
    Backpressure to the emitter: the message is queued and an awaiting emitter
    (``await socket.emit(...)``, ``await hub.emit(...)``) waits until the client's
    outbox is back under its cap, for at most ``wait_timeout`` (then the client is
    disconnected). A message may pass the cap by itself, never by more than the cap
    again (the hard limit, where the client is disconnected).
``"drop"``
    Volatile: a message the client cannot take at once is dropped.
``"drop_oldest"``
    Queued; at the cap, the oldest droppable messages (sent with ``drop_oldest`` or
    ``coalesce``) make room; if they are not enough, the new one is dropped.
``"coalesce"``
    Keep only the latest message per key (tickers, cursors, presence): a queued message
    with the same key is replaced in place; at the cap it behaves like ``drop_oldest``.
``"disconnect"``
    Queued; at the cap the client is disconnected ("transport error", as the reference
    server does on a dead transport) and, with connection-state recovery, gets what it
    missed when it reconnects. The default.

Everything is counted in the engine's metrics: messages dropped and coalesced by policy,
clients disconnected by policy, and the bytes and messages queued now.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Generic, Literal, TypeVar, get_args

from ..exceptions import InvalidOption

__all__ = ["POLICIES", "Outbox", "Policy", "check_policy"]

Policy = Literal["wait", "drop", "drop_oldest", "coalesce", "disconnect"]
#: Every slow-consumer policy.
POLICIES: tuple[Policy, ...] = get_args(Policy)

_EVICTABLE = frozenset(("drop_oldest", "coalesce"))

T = TypeVar("T")


def check_policy(policy: str | None, key: str | None = None) -> Policy | None:
    """Return ``policy`` as a :data:`Policy` (None stays None: the default applies).

    Raises:
        InvalidOption: an unknown policy, ``coalesce`` without a key, or a key with
            another policy.
    """
    if policy is None:
        if key is not None:
            raise InvalidOption("a coalesce key needs policy='coalesce'")
        return None
    if policy not in POLICIES:
        raise InvalidOption(f"unknown slow-consumer policy {policy!r}; use one of {POLICIES}")
    if (policy == "coalesce") != (key is not None):
        raise InvalidOption("policy='coalesce' needs a key, and only it takes one")
    return policy


class _Entry(Generic[T]):
    __slots__ = ("item", "key", "policy", "size")

    def __init__(self, item: T, size: int, policy: Policy, key: str | None) -> None:
        self.item = item
        self.size = size
        self.policy = policy
        self.key = key


class Outbox(Generic[T]):
    """A bounded FIFO of outgoing items with per-item policies (see the module).

    :meth:`push` answers what happened: ``"queued"``, ``"coalesced"`` (replaced a
    queued item of the same key), ``"dropped"`` (the new item, or older ones made room
    and it was queued: then ``evicted`` says how many), or ``"overflow"`` (the policy
    says the client must be disconnected; nothing was queued).
    """

    __slots__ = ("_entries", "_keys", "bytes", "evicted", "max_bytes", "max_items")

    def __init__(self, max_bytes: int, max_items: int) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._entries: collections.deque[_Entry[T]] = collections.deque()
        self._keys: dict[str, _Entry[T]] = {}
        self.bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def full(self) -> bool:
        """Whether the outbox is at or past its cap (an awaiting ``wait`` emitter waits)."""
        return self.bytes >= self.max_bytes or len(self._entries) >= self.max_items

    def _fits(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes and len(self._entries) < self.max_items

    def push(self, item: T, size: int, policy: Policy, key: str | None = None) -> str:
        """Queue ``item`` (``size`` bytes) under ``policy``; see the class for the answer."""
        self.evicted = 0
        if key is not None:
            queued = self._keys.get(key)
            if queued is not None:
                self.bytes += size - queued.size
                queued.item, queued.size = item, size
                return "coalesced"
        if not self._fits(size):
            if policy == "disconnect":
                return "overflow"
            if policy == "wait":
                # The emitter waits for room after this; past twice the cap it did not.
                if self.bytes + size > 2 * self.max_bytes or len(self) >= 2 * self.max_items:
                    return "overflow"
            elif policy == "drop" or not self._evict_for(size):
                return "dropped"
        entry = _Entry(item, size, policy, key)
        self._entries.append(entry)
        self.bytes += size
        if key is not None:
            self._keys[key] = entry
        return "dropped" if self.evicted else "queued"

    def _evict_for(self, size: int) -> bool:
        """Drop the oldest evictable entries until ``size`` fits; False if it cannot."""
        entries = self._entries
        room = self.max_bytes - self.bytes
        slots = self.max_items - len(entries)
        candidates = []
        for entry in entries:
            if room >= size and slots >= 1:
                break
            if entry.policy in _EVICTABLE:
                candidates.append(entry)
                room += entry.size
                slots += 1
        if room < size or slots < 1:
            return False
        drop = set(map(id, candidates))
        kept = collections.deque(e for e in entries if id(e) not in drop)
        for entry in candidates:
            self.bytes -= entry.size
            if entry.key is not None:
                self._keys.pop(entry.key, None)
        self._entries = kept
        self.evicted = len(candidates)
        return True

    def popleft(self) -> T:
        """Take the oldest item.

        Raises:
            IndexError: the outbox is empty.
        """
        entry = self._entries.popleft()
        self.bytes -= entry.size
        if entry.key is not None and self._keys.get(entry.key) is entry:
            del self._keys[entry.key]
        return entry.item

    def take_all(self) -> list[T]:
        """Take every item, oldest first."""
        items = [entry.item for entry in self._entries]
        self.clear()
        return items

    def append(self, item: T, size: int = 0) -> None:
        """Queue a control item (open, noop, close packets) whatever the cap: it is
        never dropped or evicted."""
        self._entries.append(_Entry(item, size, "wait", None))
        self.bytes += size

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._keys.clear()
        self.bytes = 0

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self._entries)
