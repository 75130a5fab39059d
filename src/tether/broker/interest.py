"""Interest: the channels one node listens to, reference counted, subscribed in batches.

Each local member of a room (or of a namespace) counts once; only the 0 -> 1 and 1 -> 0
transitions reach the transport, and every transition made in one loop turn goes out
as one SUBSCRIBE/UNSUBSCRIBE command. :meth:`ChannelInterest.acquire` returns when the
transport has confirmed the subscription, so a broadcast published after it returns
reaches this node (the race of socket.io#4734 cannot happen).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Set

from .channels import ChannelInfo, namespace_channel, request_channel, room_channel

__all__ = ["ChannelInterest"]

logger = logging.getLogger("tether.broker")

SendSubscribe = Callable[[list[str], list[str]], Awaitable[None]]


class ChannelInterest:
    """The reference-counted channel subscriptions of one node.

    Args:
        prefix: the first part of every channel name.
        node_channel: the node's own channel, which the transport subscribes for the
            node's whole life (it is never counted, and never undone).
        send: sends one SUBSCRIBE and one UNSUBSCRIBE batch (the broker's
            ``_transport_subscribe``); the transport reports each subscribed channel
            back through :meth:`confirmed`.
        subscribe_timeout: how long :meth:`acquire` waits for the confirmations.
    """

    def __init__(
        self, prefix: str, node_channel: str, send: SendSubscribe, subscribe_timeout: float
    ) -> None:
        self._prefix = prefix
        self._node_channel = node_channel
        self._send = send
        self._subscribe_timeout = subscribe_timeout
        # channel name -> (reference count, what it carries)
        self._refs: dict[str, int] = {}
        self._info: dict[str, ChannelInfo] = {}
        self._subscribed: set[str] = set()  # confirmed by the transport
        self._to_sub: set[str] = set()
        self._to_unsub: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._flush_scheduled = False
        self._flush_lock = asyncio.Lock()
        # room interest by namespace, for the relevance filter of namespace broadcasts
        self._rooms: dict[str, set[str]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        """The batches being sent (the broker cancels them when it closes)."""

    # ------------------------------------------------------------------ queries

    @property
    def channels(self) -> frozenset[str]:
        """The channels of interest right now (the node channel excluded)."""
        return frozenset(self._refs)

    def info(self, channel: str) -> ChannelInfo | None:
        """What ``channel`` carries, while it is of interest or still subscribed."""
        return self._info.get(channel)

    def local_rooms(self, namespace: str) -> Set[str]:
        """The rooms of ``namespace`` this node has interest in."""
        return self._rooms.get(namespace, set())

    def has(self, namespace: str, room: str | None = None) -> bool:
        """Whether there is interest in ``room`` (or in the namespace when it is None)."""
        if room is None:
            return namespace_channel(self._prefix, namespace) in self._refs
        return room_channel(self._prefix, namespace, room) in self._refs

    # ------------------------------------------------------------------ namespaces and rooms

    def _namespace_channels(self, namespace: str) -> list[tuple[str, ChannelInfo]]:
        return [
            (namespace_channel(self._prefix, namespace), ChannelInfo("namespace", namespace)),
            (request_channel(self._prefix, namespace), ChannelInfo("request", namespace)),
        ]

    async def add(self, namespace: str, room: str | None = None) -> bool:
        """Count one local member of ``room`` (or of the namespace); see :meth:`acquire`."""
        if room is None:
            targets = self._namespace_channels(namespace)
        else:
            targets = [
                (room_channel(self._prefix, namespace, room), ChannelInfo("room", namespace, room))
            ]
            self._rooms.setdefault(namespace, set()).add(room)
        return await self.acquire(targets)

    def remove(self, namespace: str, room: str | None = None) -> None:
        """Undo one :meth:`add`.

        Raises:
            ValueError: there is no such interest.
        """
        if room is None:
            names = [name for name, _ in self._namespace_channels(namespace)]
        else:
            names = [room_channel(self._prefix, namespace, room)]
        self.release(names)
        if room is not None and names[0] not in self._refs:
            rooms = self._rooms.get(namespace)
            if rooms is not None:
                rooms.discard(room)
                if not rooms:
                    del self._rooms[namespace]

    # ------------------------------------------------------------------ reference counts

    async def acquire(self, targets: list[tuple[str, ChannelInfo]]) -> bool:
        """Count one more use of each channel; subscribe those used for the first time.

        Returns:
            Whether every channel is confirmed (``False`` after ``subscribe_timeout``,
            when the transport is down; the interest is kept and subscribed on reconnect).
        """
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
                self._waiters.setdefault(name, []).append(fut)
                waiters.append(fut)
        self._schedule_flush()
        if not waiters:
            return True
        done, _ = await asyncio.wait(waiters, timeout=self._subscribe_timeout)
        for fut in waiters:
            if not fut.done():
                fut.cancel()
        return len(done) == len(waiters) and all(n in self._subscribed for n, _ in targets)

    def release(self, names: list[str]) -> None:
        """Count one use less of each channel; unsubscribe those no longer used.

        Raises:
            ValueError: one of ``names`` is not of interest (then none is released).
        """
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
                    self._wake(name)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Every change made in this loop turn goes out in one command (a join storm of
        # 1000 rooms is one SUBSCRIBE, as Centrifuge batches them).
        if self._flush_scheduled or not (self._to_sub or self._to_unsub):
            return
        self._flush_scheduled = True
        task = asyncio.get_running_loop().create_task(self._flush())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _flush(self) -> None:
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
                await self._send(subscribe, unsubscribe)
            except Exception:
                # The transport is down: the reconnect path subscribes every channel of
                # interest, so nothing is lost by dropping this batch.
                logger.debug("subscribe batch not sent", exc_info=True)

    # ------------------------------------------------------------------ transport events

    def confirmed(self, channel: str) -> None:
        """The transport subscribed ``channel``."""
        self._subscribed.add(channel)
        if channel not in self._refs and channel != self._node_channel:
            # The last member left while the SUBSCRIBE was in flight: undo it.
            self._to_unsub.add(channel)
            self._schedule_flush()
        self._wake(channel)

    def lost(self) -> None:
        """The transport's connection is gone: nothing is subscribed until it resubscribes."""
        self._subscribed.clear()

    def close(self) -> None:
        """Release every :meth:`acquire` still waiting for a confirmation."""
        for channel in list(self._waiters):
            self._wake(channel)

    def _wake(self, channel: str) -> None:
        for fut in self._waiters.pop(channel, ()):
            if not fut.done():
                fut.set_result(None)
