"""Publish to a tether cluster from a process that has no hub (a worker, a cron job).

::

    emitter = Emitter("redis://127.0.0.1:6379/0", prefix="chat")
    await emitter.to("room-1").except_("muted").emit("news", {"title": "..."})
    await emitter.of("/admin").sockets_join("staff")
    await emitter.close()

It speaks the socket.io adapter's format, so it reaches the hubs of a tether cluster (and
the nodes of a socket.io cluster) whose prefix is its own. Unlike the socket.io emitter,
a broadcast to several rooms goes once to each room's channel (with one message id, so a
node hosting several of the rooms delivers it once): only nodes hosting a target room
receive it. ``sockets_join``, ``sockets_leave``, ``disconnect_sockets`` and
``server_side_emit`` are published to the nodes of the namespace and not acknowledged
(there is no node to answer to): they take effect as each node receives them, on the
nodes that have sockets in that namespace (a node listens to a namespace's commands while
it has sockets in it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from .channels import namespace_channel, request_channel, room_channel
from .messages import Broadcast

__all__ = ["Emitter", "EmitterOperator"]

_UID = "emitter"
# socket.io-adapter RequestType values (see wire.COMMAND_TYPES).
_REMOTE_JOIN, _REMOTE_LEAVE, _REMOTE_DISCONNECT, _SERVER_SIDE_EMIT = 2, 3, 4, 6
_RESERVED = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


class Emitter:
    """Emits to rooms and namespaces of a cluster through Redis, without a hub.

    Args:
        url: the Redis URL the cluster's ``RedisBroker``\\s use.
        prefix: their prefix (``"socket.io"`` reaches a socket.io cluster with the
            default key).
        namespace: the namespace this emitter addresses (see :meth:`of`).
        client: an existing ``redis.asyncio.Redis`` to publish with (then ``url`` is
            ignored and :meth:`close` leaves it open).

    Raises:
        ImportError: redis-py or msgpack is not installed (the ``tether[redis]`` extra).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "tether",
        namespace: str = "/",
        client: Any = None,
    ) -> None:
        try:
            import redis.asyncio as redis_asyncio

            from . import wire  # msgpack
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "tether.broker.Emitter needs redis-py and msgpack: pip install 'tether[redis]'"
            ) from exc
        self._wire = wire
        self.prefix = prefix
        self.namespace = namespace if namespace.startswith("/") else "/" + namespace
        self._owns_client = client is None
        self._redis = client if client is not None else redis_asyncio.Redis.from_url(url)

    def of(self, namespace: str) -> Emitter:
        """An emitter for another namespace, sharing this one's connection."""
        return Emitter(prefix=self.prefix, namespace=namespace, client=self._redis)

    def to(self, *rooms: str) -> EmitterOperator:
        """Target the sockets in any of ``rooms`` (a socket's sid is a room too)."""
        return EmitterOperator(self).to(*rooms)

    in_ = to

    def except_(self, *rooms: str) -> EmitterOperator:
        """Skip the sockets in any of ``rooms``."""
        return EmitterOperator(self).except_(*rooms)

    @property
    def volatile(self) -> EmitterOperator:
        """The event may be dropped for clients that are not ready to receive it."""
        return EmitterOperator(self).volatile

    async def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` to every socket of the namespace.

        Raises:
            ValueError: a reserved event name.
            TypeError: an argument msgpack cannot carry.
        """
        await EmitterOperator(self).emit(event, *args)

    async def sockets_join(self, *rooms: str) -> None:
        """Make every socket of the namespace join ``rooms``."""
        await EmitterOperator(self).sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str) -> None:
        """Make every socket of the namespace leave ``rooms``."""
        await EmitterOperator(self).sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace (``close``: the whole connection)."""
        await EmitterOperator(self).disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to the ``@hub.on_server_event`` handlers of every node.

        Raises:
            TypeError: an argument JSON cannot carry.
        """
        await self._command({"type": _SERVER_SIDE_EMIT, "data": [event, *args]})

    async def close(self) -> None:
        """Close the Redis connection (unless it was passed in)."""
        if self._owns_client:
            await self._redis.aclose()

    async def _publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        if len(items) == 1:
            await self._redis.publish(*items[0])
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data in items:
                pipe.publish(channel, data)
            await pipe.execute()

    async def _command(self, request: dict[str, Any]) -> None:
        request.setdefault("uid", _UID)
        data = json.dumps(request, separators=(",", ":")).encode()
        await self._publish([(request_channel(self.prefix, self.namespace), data)])


class EmitterOperator:
    """Rooms, exceptions and flags of one emit (what :meth:`Emitter.to` returns)."""

    def __init__(self, emitter: Emitter) -> None:
        self._emitter = emitter
        self._rooms: dict[str, None] = {}
        self._except: dict[str, None] = {}
        self._flags: dict[str, Any] = {}

    def to(self, *rooms: str) -> EmitterOperator:
        """Also target the sockets in any of ``rooms``."""
        self._rooms.update(dict.fromkeys(rooms))
        return self

    in_ = to

    def except_(self, *rooms: str) -> EmitterOperator:
        """Also skip the sockets in any of ``rooms``."""
        self._except.update(dict.fromkeys(rooms))
        return self

    @property
    def volatile(self) -> EmitterOperator:
        """The event may be dropped for clients that are not ready to receive it."""
        self._flags["volatile"] = True
        return self

    async def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with ``args`` (bytes are sent as binary) to the target sockets.

        Raises:
            ValueError: a reserved event name.
            TypeError: an argument msgpack cannot carry.
        """
        if event in _RESERVED:
            raise ValueError(f"{event!r} is a reserved event name")
        emitter = self._emitter
        rooms = tuple(self._rooms)
        message = Broadcast(
            namespace=emitter.namespace,
            rooms=rooms,
            except_rooms=tuple(self._except),
            data=(event, *args),
            flags=dict(self._flags),
            origin=_UID,
            message_id=secrets.token_hex(8),
        )
        data = emitter._wire.encode_broadcast(message)
        if rooms:
            channels = [room_channel(emitter.prefix, emitter.namespace, r) for r in rooms]
        else:
            channels = [namespace_channel(emitter.prefix, emitter.namespace)]
        await emitter._publish([(channel, data) for channel in channels])

    async def sockets_join(self, *rooms: str) -> None:
        """Make the target sockets join ``rooms``."""
        await self._emitter._command(self._selection(_REMOTE_JOIN, rooms=list(rooms)))

    async def sockets_leave(self, *rooms: str) -> None:
        """Make the target sockets leave ``rooms``."""
        await self._emitter._command(self._selection(_REMOTE_LEAVE, rooms=list(rooms)))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the target sockets (``close``: the whole connection)."""
        await self._emitter._command(self._selection(_REMOTE_DISCONNECT, close=close))

    def _selection(self, kind: int, **extra: Any) -> dict[str, Any]:
        opts = {"rooms": list(self._rooms), "except": list(self._except)}
        return {"type": kind, "opts": opts, **extra}
