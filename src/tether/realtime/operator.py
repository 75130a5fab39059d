"""The broadcast operator: a target (rooms to include and exclude) and flags."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..broker import RequestResult
from ..engine.outbox import Policy, check_policy
from ..exceptions import AckTimeout
from .remote import RemoteSocket, SocketList

if TYPE_CHECKING:
    from .namespace import Namespace
    from .socket import Socket

__all__ = ["BroadcastOperator"]


class BroadcastOperator:
    """A broadcast target: rooms to include and exclude, and flags. Immutable-ish."""

    def __init__(
        self,
        namespace: Namespace,
        rooms: set[str] | None = None,
        except_rooms: set[str] | None = None,
        *,
        volatile: bool = False,
        local: bool = False,
        timeout: float | None = None,
        compress: bool = True,
        policy: Policy | None = None,
        key: str | None = None,
    ) -> None:
        self._ns = namespace
        self._rooms = rooms or set()
        self._except = except_rooms or set()
        self._volatile = volatile
        self._local = local
        self._timeout = timeout
        self._compress = compress
        self._policy = policy
        self._key = key

    def _copy(self, **changes: Any) -> BroadcastOperator:
        values: dict[str, Any] = {
            "rooms": set(self._rooms),
            "except_rooms": set(self._except),
            "volatile": self._volatile,
            "local": self._local,
            "timeout": self._timeout,
            "compress": self._compress,
            "policy": self._policy,
            "key": self._key,
        }
        values.update(changes)
        rooms = values.pop("rooms")
        except_rooms = values.pop("except_rooms")
        return BroadcastOperator(self._ns, rooms, except_rooms, **values)

    def to(self, *rooms: str) -> BroadcastOperator:
        """Also target these rooms."""
        return self._copy(rooms=self._rooms | set(rooms))

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        """Exclude sockets in these rooms."""
        return self._copy(except_rooms=self._except | set(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the event for clients that cannot take it right now."""
        return self._copy(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only this node's sockets (no fan-out through the broker)."""
        return self._copy(local=True)

    def policy(self, policy: Policy, key: str | None = None) -> BroadcastOperator:
        """The slow-consumer policy of this emit, for clients that are behind:
        ``"wait"`` (the emit waits until every such local client has room),
        ``"drop"``, ``"drop_oldest"``, ``"coalesce"`` (with ``key``: only the latest
        message of that key waits) or ``"disconnect"``. See :mod:`tether.engine.outbox`.

        Raises:
            InvalidOption: an unknown policy, or a key without ``"coalesce"``.
        """
        return self._copy(policy=check_policy(policy, key), key=key)

    def coalesce(self, key: str) -> BroadcastOperator:
        """Shorthand for ``policy("coalesce", key)``: a client that is behind gets only
        the latest message of ``key`` (a ticker symbol, a cursor, a presence entry)."""
        return self.policy("coalesce", key)

    def compress(self, value: bool = True) -> BroadcastOperator:
        """Allow (True, the default) or forbid permessage-deflate for the event on
        WebSocket transports; it only applies when the server was started with
        compression."""
        return self._copy(compress=value)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """The acknowledgement timeout of :meth:`emit_with_ack`."""
        return self._copy(timeout=seconds)

    def _targets(self) -> list[Socket]:
        return self._ns._match(self._rooms, self._except)

    def _payload(self, **extra: Any) -> dict[str, Any]:
        return {"rooms": sorted(self._rooms), "except": sorted(self._except), **extra}

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to every matching socket of every node (encoded once here).

        Raises:
            ValueError: a reserved event name.
            TypeError: arguments JSON (or the broker's wire format) cannot carry.
            InvalidState: the broker is closed.
            BufferFull: the broker cannot reach its transport and its buffer is full.
        """
        ns = self._ns
        shared = ns.hub._shared
        if (
            shared is not None
            and not self._local
            and not self._volatile
            and ns._policy_for(self._policy) != "drop"
        ):
            await self._emit_durable(event, args)
            return
        full = ns._broadcast(
            event,
            args,
            self._rooms,
            self._except,
            self._volatile,
            self._compress,
            self._policy,
            self._key,
        )
        if not self._local:
            await ns.hub._cluster.broadcast(
                ns.name,
                event,
                args,
                self._rooms,
                self._except,
                volatile=self._volatile,
                compress=self._compress,
                policy=self._policy,
                key=self._key,
            )
        if full:
            # "wait": backpressure to the emitter, bounded by wait_timeout; a client
            # still full then is disconnected so it cannot hold every emitter.
            timeout = ns.hub.engine.wait_timeout
            waits = await asyncio.gather(*(session.wait_room(timeout) for session in full))
            for session, ok in zip(full, waits, strict=True):
                if not ok:
                    session._slow_consumer("wait")

    async def _emit_durable(self, event: str, args: tuple[Any, ...]) -> None:
        # Into the shared recovery log; this node's sockets get it back from the broker
        # like every other node's, so wait for this node's subscriptions still in flight
        # (a socket that just joined, or just connected) to be confirmed first.
        ns = self._ns
        cluster = ns.hub._cluster
        waits = [
            pending
            for room in (self._rooms or (None,))
            if (pending := cluster.pending(ns.name, room)) is not None
        ]
        if waits:
            await asyncio.wait(waits, timeout=ns.hub.broker._subscribe_timeout)
        await cluster.broadcast(
            ns.name,
            event,
            args,
            self._rooms,
            self._except,
            compress=self._compress,
            policy=self._policy,
            key=self._key,
            durable=True,
        )

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Send an event to every matching socket of every live node and gather their
        acknowledgements (each node collects its local ones and replies).

        Returns:
            One response per socket that answered in time (its only argument, or a
            tuple for several; a list when it came from another node over Redis).

        Raises:
            AckTimeout: some sockets did not answer within the timeout, or a node did
                not reply: ``.responses`` holds the answers that came, ``.missing`` the
                number of sockets that did not answer and ``.missing_nodes`` the ids of
                the nodes that did not reply.
            InvalidState: the broker is closed.
        """
        timeout = self._timeout if self._timeout is not None else 10.0
        if self._local:
            return await self._local_acks(event, args, timeout)
        payload = self._payload(event=event, args=list(args), timeout=timeout)
        # The nodes wait ``timeout`` for their clients; give their replies time to come.
        result = await self._ns.hub._cluster.request(
            self._ns, "emit_with_ack", payload, timeout=timeout + max(1.0, timeout)
        )
        responses: list[Any] = []
        missing = 0
        for _, reply in sorted(result.replies.items()):
            responses += reply["responses"]
            missing += reply["missing"]
        nodes = set(result.missing) | set(result.errors)
        if missing or nodes:
            exc = AckTimeout(
                f"{missing} clients did not acknowledge, {len(nodes)} nodes did not reply"
            )
            exc.responses = responses  # type: ignore[attr-defined]
            exc.missing = missing  # type: ignore[attr-defined]
            exc.missing_nodes = frozenset(nodes)  # type: ignore[attr-defined]
            raise exc
        return responses

    async def _local_acks(self, event: str, args: tuple[Any, ...], timeout: float) -> list[Any]:
        sockets = self._targets()
        results = await asyncio.gather(
            *(s.emit_with_ack(event, *args, timeout=timeout) for s in sockets),
            return_exceptions=True,
        )
        responses = [r for r in results if not isinstance(r, BaseException)]
        if len(responses) != len(results):
            exc = AckTimeout(
                f"{len(results) - len(responses)} of {len(results)} clients did not acknowledge"
            )
            exc.responses = responses  # type: ignore[attr-defined]
            exc.missing = len(results) - len(responses)  # type: ignore[attr-defined]
            exc.missing_nodes = frozenset()  # type: ignore[attr-defined]
            raise exc
        return responses

    async def server_side_emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Call the :meth:`Hub.on_server_event` handler of ``event`` on every other live
        node and return their return values (one per node, in node id order).

        Raises:
            AckTimeout: a node did not reply within the timeout (or its handler
                failed): ``.responses`` holds the replies that came, ``.missing_nodes``
                the ids of the others.
            InvalidState: the broker is closed.
        """
        timeout = self._timeout if self._timeout is not None else 10.0
        result = await self._ns.hub._cluster.server_side_emit(self._ns, event, args, timeout)
        responses = [reply for _, reply in sorted(result.replies.items())]
        nodes = set(result.missing) | set(result.errors)
        if nodes:
            exc = AckTimeout(f"{len(nodes)} nodes did not reply to {event!r}")
            exc.responses = responses  # type: ignore[attr-defined]
            exc.missing_nodes = frozenset(nodes)  # type: ignore[attr-defined]
            raise exc
        return responses

    async def fetch_sockets(self) -> SocketList[Socket | RemoteSocket]:
        """The matching sockets of every live node (of this node with ``.local``).

        This node's sockets are its :class:`Socket` objects; the others are
        :class:`~tether.realtime.remote.RemoteSocket` snapshots (``sid``, ``rooms``,
        ``data``, ``handshake``) whose ``emit``, ``join``, ``leave`` and ``disconnect``
        act on their node. A node that dies during the call (or does not answer within
        the broker's ``request_timeout``) is left out: the returned list's ``missing``
        attribute holds its node id (``errors`` those whose handler failed), so
        ``sockets.missing`` empty means the list is complete.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        if self._local:
            return SocketList(self._targets())
        result = await self._request("fetch_sockets")
        me = self._ns.hub._cluster.broker.node_id
        out: list[Socket | RemoteSocket] = []
        for node, infos in sorted(result.replies.items()):
            for info in infos or ():
                local = self._ns.sockets.get(info["sid"]) if node == me else None
                out.append(local if local is not None else RemoteSocket(self._ns, node, info))
        return SocketList(out, result.missing, result.errors)

    async def _request(self, kind: str, **extra: Any) -> RequestResult:
        return await self._ns.hub._cluster.request(
            self._ns, kind, self._payload(**extra), local=self._local
        )

    async def disconnect_sockets(self, close: bool = False) -> RequestResult:
        """Disconnect the matching sockets of every live node (``close``: their
        connections too); returns once every live node has done it.

        Returns:
            The number of sockets disconnected, by node id (``replies``); nodes that
            died or did not answer in time are in ``missing``.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self._request("disconnect_sockets", close=close)

    async def sockets_join(self, *rooms: str) -> RequestResult:
        """Make the matching sockets of every live node join rooms; returns once every
        live node has done it (and subscribed the rooms), so an emit to the rooms right
        after reaches the new members.

        Returns:
            The number of sockets that joined, by node id (``replies``); nodes that died
            or did not answer in time are in ``missing``.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self._request("sockets_join", target=list(rooms))

    async def sockets_leave(self, *rooms: str) -> RequestResult:
        """Make the matching sockets of every live node leave rooms; returns once every
        live node has done it.

        Returns:
            The number of sockets that left, by node id (``replies``); missing nodes
            are in ``missing``.

        Raises:
            InvalidState: the broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        return await self._request("sockets_leave", target=list(rooms))
