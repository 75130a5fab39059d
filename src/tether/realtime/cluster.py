"""The hub's side of a cluster broker: room interest, cross-node broadcasts and requests.

A set of hubs sharing a :class:`~tether.broker.cluster.ClusterBroker` cluster behaves as
one server. This module is the only place of the realtime layer that talks to the broker,
and only through that interface (it never knows whether Redis is there):

- **Interest.** :class:`ClusterAdapter` is the room index of a namespace that tells the
  broker when a room (a socket's own sid room included) gets its first local member
  (``add_interest(ns, room)``) and loses its last (``remove_interest``), and when the
  namespace gets its first local socket and loses its last. A node with no member in a
  room therefore receives nothing for broadcasts to it.
- **Broadcasts** go out with ``broker.broadcast`` (one copy per room channel); incoming
  :class:`~tether.broker.cluster.Broadcast` messages are written to the matching local
  sockets synchronously in the broker's worker (writes to an Engine.IO session never
  wait: a full session is a slow consumer, handled by the engine), so delivery keeps the
  publisher's order and never blocks the broker's reader.
- **Requests.** ``sockets_join``, ``sockets_leave`` and ``disconnect_sockets`` are
  ``broker.request`` calls answered by every live node (this one included), so they
  return when every live node has done it.
- The socket.io emitter's :class:`~tether.broker.cluster.RemoteCommand` messages (join,
  leave, disconnect, serverSideEmit) are applied to the local sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..broker import (
    Broadcast,
    ClusterBroker,
    NodeRequest,
    RemoteCommand,
    RequestResult,
)
from ..engine.outbox import Policy, check_policy
from ..exceptions import AckTimeout, InvalidOption
from . import forwarding
from .adapter import LocalAdapter, RoomChange
from .operator import BroadcastOperator
from .remote import describe

if TYPE_CHECKING:
    from .hub import Hub
    from .namespace import Namespace

__all__ = ["ClusterAdapter", "ClusterLink", "RoomChange"]

logger = logging.getLogger("tether.realtime")


class ClusterAdapter(LocalAdapter):
    """The room index of one namespace, declaring room interest to the broker."""

    __slots__ = ("_link", "_namespace")

    def __init__(self, link: ClusterLink, namespace: str) -> None:
        super().__init__()
        self._link = link
        self._namespace = namespace

    def join(self, sid: str, rooms: Iterable[str]) -> list[Awaitable[bool]]:
        """Add ``sid`` to ``rooms``; returns the interest confirmations to wait for."""
        rooms = list(dict.fromkeys(rooms))
        first_socket = not self._socket_rooms and sid not in self._socket_rooms
        new_rooms = [room for room in rooms if room not in self._rooms]
        super().join(sid, rooms)
        waits: list[Awaitable[bool]] = [
            pending
            for room in rooms
            if room not in new_rooms
            and (pending := self._link.pending(self._namespace, room)) is not None
        ]
        if first_socket:
            waits.append(self._link.add_interest(self._namespace, None))
        waits += [self._link.add_interest(self._namespace, room) for room in new_rooms]
        return waits

    def leave(self, sid: str, rooms: Iterable[str]) -> None:
        """Remove ``sid`` from ``rooms``; a room without local members loses interest."""
        rooms = list(rooms)
        known = [room for room in dict.fromkeys(rooms) if room in self._rooms]
        super().leave(sid, rooms)
        for room in known:
            if room not in self._rooms:
                self._link.remove_interest(self._namespace, room)

    def leave_all(self, sid: str) -> None:
        """Remove ``sid`` from every room; the last socket drops the namespace interest."""
        known = sid in self._socket_rooms
        super().leave_all(sid)
        if known and not self._socket_rooms:
            self._link.remove_interest(self._namespace, None)


def _local_result(node_id: str, data: Any = None) -> RequestResult:
    return RequestResult(replies={node_id: data}, errors={}, missing=frozenset(), timed_out=False)


class ClusterLink:
    """One hub's connection to its cluster broker (interest, messages, requests).

    Args:
        hub: the hub.
        broker: the cluster broker shared with the other nodes.
    """

    def __init__(self, hub: Hub, broker: ClusterBroker) -> None:
        self.hub = hub
        self.broker = broker
        self._ready = asyncio.Event()
        self._starting = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._pending: dict[tuple[str, str | None], asyncio.Future[bool]] = {}
        self._kinds: dict[str, Callable[[Namespace, Any], Awaitable[Any]]] = {
            "sockets_join": self._do_join,
            "sockets_leave": self._do_leave,
            "disconnect_sockets": self._do_disconnect,
            "fetch_sockets": self._do_fetch,
            "server_event": self._do_server_event,
            "emit_with_ack": self._do_emit_with_ack,
            forwarding.KIND: self._do_engine_http,
        }
        broker.set_handlers(on_message=self._on_message, on_request=self._on_request)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the broker; interest changes made before wait for this, in order.

        Raises:
            InvalidState: the broker is closed.
        """
        self._starting = True
        await self.broker.start()
        self._ready.set()

    async def drain(self) -> None:
        """Wait (bounded) for the interest changes still in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.broker.request_timeout)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("cluster operation failed", exc_info=task.exception())

    # ------------------------------------------------------------------ interest

    def add_interest(self, namespace: str, room: str | None) -> Awaitable[bool]:
        """Declare interest (in a task); the result says whether it was confirmed."""
        if not self._starting:
            self._spawn(self.start())
        task = self._pending[(namespace, room)] = self._spawn(self._add(namespace, room))
        task.add_done_callback(lambda _: self._forget(namespace, room, task))
        return task

    def pending(self, namespace: str, room: str | None) -> asyncio.Future[bool] | None:
        """The confirmation of ``room``'s interest if it is still in flight."""
        return self._pending.get((namespace, room))

    def _forget(self, namespace: str, room: str | None, task: asyncio.Future[bool]) -> None:
        if self._pending.get((namespace, room)) is task:
            del self._pending[(namespace, room)]

    def remove_interest(self, namespace: str, room: str | None) -> None:
        """Drop one interest (in a task, ordered after the earlier changes)."""
        self._spawn(self._remove(namespace, room))

    # Every change waits for the broker to be started, then changes its reference count
    # before it first suspends: the tasks run in creation order, so a leave never
    # overtakes the join it undoes.
    async def _add(self, namespace: str, room: str | None) -> bool:
        await self._ready.wait()
        if self.broker.state == "closed":
            return False
        return await self.broker.add_interest(namespace, room)

    async def _remove(self, namespace: str, room: str | None) -> None:
        await self._ready.wait()
        if self.broker.state != "closed":
            await self.broker.remove_interest(namespace, room)

    # ------------------------------------------------------------------ outgoing

    async def broadcast(
        self,
        namespace: str,
        event: str,
        args: Iterable[Any],
        rooms: Iterable[str],
        except_rooms: Iterable[str],
        *,
        volatile: bool = False,
        compress: bool = True,
        policy: Policy | None = None,
        key: str | None = None,
        durable: bool = False,
    ) -> None:
        """Send an event to the matching sockets of the other nodes (with the emit's
        slow-consumer policy: a receiving node cannot make a remote emitter wait, so
        there ``wait`` queues up to the hard limit, twice the cap, then disconnects).
        A ``durable`` one goes into the shared recovery log and reaches this node's
        sockets too (see :mod:`tether.realtime.sessions`).

        Raises:
            InvalidState: the broker is closed.
            BufferFull: the broker cannot reach its transport and its buffer is full.
            TypeError: an argument the wire format cannot carry.
        """
        flags: dict[str, Any] = {}
        if volatile:
            flags["volatile"] = True
        if not compress:
            flags["compress"] = False
        if policy is not None:
            flags["policy"] = policy
        if key is not None:
            flags["key"] = key
        await self.broker.broadcast(
            namespace,
            [event, *args],
            rooms=sorted(rooms),
            except_rooms=sorted(except_rooms),
            flags=flags,
            durable=durable,
        )

    async def request(
        self,
        ns: Namespace,
        kind: str,
        payload: dict[str, Any],
        *,
        local: bool = False,
        nodes: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> RequestResult:
        """Run ``kind`` on every live node (on this one when ``local``, on ``nodes``
        when given), waiting at most ``timeout`` (default: the broker's).

        Returns:
            The replies by node id; a node that died or did not answer in the broker's
            ``request_timeout`` is in ``missing``, a node whose handler raised in
            ``errors``.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many requests are waiting.
        """
        if local:
            return _local_result(self.broker.node_id, await self._kinds[kind](ns, payload))
        return await self.broker.request(ns.name, kind, payload, nodes=nodes, timeout=timeout)

    async def server_side_emit(
        self, ns: Namespace, event: str, args: Iterable[Any], timeout: float | None = None
    ) -> RequestResult:
        """Call the ``event`` handlers of every other live node and gather the replies.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many requests are waiting.
        """
        me = self.broker.node_id
        others = [node for node in await self.broker.live_nodes() if node != me]
        if not others:
            return RequestResult(replies={}, errors={}, missing=frozenset(), timed_out=False)
        payload = {"event": event, "args": list(args)}
        return await self.broker.request(
            ns.name, "server_event", payload, nodes=others, timeout=timeout
        )

    # ------------------------------------------------------------------ incoming

    def _on_message(self, message: Broadcast | RemoteCommand) -> Awaitable[None] | None:
        ns = self.hub._namespaces.get(message.namespace)
        if ns is None:
            return None
        if isinstance(message, Broadcast):
            event = message.event
            if event is None:
                return None
            flags = message.flags
            try:
                policy = check_policy(flags.get("policy"), flags.get("key"))
            except InvalidOption:
                logger.warning("broadcast with a bad policy from another node: dropped")
                return None
            ns._broadcast(
                event,
                list(message.args),
                set(message.rooms),
                set(message.except_rooms),
                bool(flags.get("volatile")),
                bool(flags.get("compress", True)),
                policy,
                flags.get("key"),
                message.offset,
            )
            return None
        return self._command(ns, message)

    async def _command(self, ns: Namespace, command: RemoteCommand) -> None:
        target = {"rooms": list(command.rooms), "except": list(command.except_rooms)}
        if command.kind == "join":
            await self._do_join(ns, {**target, "target": list(command.target_rooms)})
        elif command.kind == "leave":
            await self._do_leave(ns, {**target, "target": list(command.target_rooms)})
        elif command.kind == "disconnect":
            await self._do_disconnect(ns, {**target, "close": command.close})
        elif command.kind == "server_side_emit" and command.data:
            await self.hub._server_event(ns, command.data[0], list(command.data[1:]))

    async def _on_request(self, request: NodeRequest) -> Any:
        ns = self.hub._namespaces.get(request.namespace)
        handler = self._kinds.get(request.kind)
        if handler is None:
            raise ValueError(f"unknown request {request.kind!r}")
        if ns is None:
            return None
        return await handler(ns, request.payload)

    @staticmethod
    def _targets(ns: Namespace, payload: Any) -> list[Any]:
        return ns._match(set(payload.get("rooms", ())), set(payload.get("except", ())))

    async def _do_join(self, ns: Namespace, payload: Any) -> int:
        sockets = self._targets(ns, payload)
        await asyncio.gather(*(s.join(*payload["target"])._wait() for s in sockets))
        return len(sockets)

    async def _do_fetch(self, ns: Namespace, payload: Any) -> list[dict[str, Any]]:
        return [describe(socket) for socket in self._targets(ns, payload)]

    async def _do_server_event(self, ns: Namespace, payload: Any) -> Any:
        return await self.hub._server_event(ns, payload["event"], list(payload["args"]))

    async def _do_emit_with_ack(self, ns: Namespace, payload: Any) -> dict[str, Any]:
        op = BroadcastOperator(
            ns,
            set(payload["rooms"]),
            set(payload["except"]),
            local=True,
            timeout=payload["timeout"],
        )
        try:
            responses = await op.emit_with_ack(payload["event"], *payload["args"])
        except AckTimeout as exc:
            return {"responses": exc.responses, "missing": exc.missing}  # type: ignore[attr-defined]
        return {"responses": responses, "missing": 0}

    async def _do_engine_http(self, ns: Namespace, payload: Any) -> dict[str, Any]:
        return await forwarding.serve(self.hub, payload)

    async def _do_leave(self, ns: Namespace, payload: Any) -> int:
        sockets = self._targets(ns, payload)
        for socket in sockets:
            socket.leave(*payload["target"])
        return len(sockets)

    async def _do_disconnect(self, ns: Namespace, payload: Any) -> int:
        sockets = self._targets(ns, payload)
        for socket in sockets:
            await socket.disconnect(bool(payload.get("close")))
        return len(sockets)
