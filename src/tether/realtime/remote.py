"""Sockets of other nodes, as ``fetch_sockets()`` returns them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..broker import RequestResult

if TYPE_CHECKING:
    from .namespace import Namespace
    from .socket import Handshake, Socket

__all__ = ["RemoteSocket", "SocketList", "describe"]

T = TypeVar("T")


class SocketList(list[T]):
    """A list of sockets that also says which nodes did not answer.

    Attributes:
        missing: the ids of the nodes asked that did not answer (dead, or too slow):
            their sockets are not in the list.
        errors: the nodes whose handler failed, by node id, with the error.
    """

    def __init__(
        self,
        items: Iterable[T] = (),
        missing: Iterable[str] = (),
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(items)
        self.missing: frozenset[str] = frozenset(missing)
        self.errors: dict[str, str] = dict(errors or {})


def describe(socket: Socket) -> dict[str, Any]:
    """What another node needs to know of a local socket (msgpack-serializable)."""
    hs = socket.handshake
    return {
        "sid": socket.sid,
        "rooms": sorted(socket.rooms),
        "data": socket.data,
        "handshake": {
            "auth": hs.auth,
            "headers": hs.headers,
            "query": hs.query,
            "address": hs.address,
            "time": hs.time,
            "url": hs.url,
        },
    }


class RemoteSocket:
    """A socket connected to another node: a snapshot of it, and remote actions.

    Attributes:
        sid: the socket's id.
        node_id: the node it is connected to.
        rooms: its rooms when fetched (including its own).
        data: its ``data`` when fetched (a copy).
        handshake: its handshake.
    """

    def __init__(self, namespace: Namespace, node_id: str, info: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.node_id = node_id
        self.sid: str = info["sid"]
        self.rooms: set[str] = set(info["rooms"])
        self.data: dict[str, Any] = dict(info.get("data") or {})
        from .socket import Handshake  # socket -> operator -> remote: imported late

        hs = info["handshake"]
        self.handshake: Handshake = Handshake(
            hs["auth"], hs["headers"], hs["query"], hs["address"], hs["time"], hs["url"]
        )

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to the socket (through its sid room).

        Raises:
            InvalidState: the broker is closed.
            TypeError: arguments the wire format cannot carry.
        """
        await self.namespace.to(self.sid).emit(event, *args)

    async def _on_node(self, kind: str, **payload: Any) -> RequestResult:
        link = self.namespace.hub._cluster
        body = {"rooms": [self.sid], "except": [], **payload}
        return await link.request(self.namespace, kind, body, nodes=[self.node_id])

    async def join(self, *rooms: str) -> RequestResult:
        """Make the socket join rooms on its node; returns when that node has done it.

        Returns:
            The node's reply (the node id is in ``missing`` when it did not answer).

        Raises:
            InvalidState: the broker is closed.
        """
        return await self._on_node("sockets_join", target=list(rooms))

    async def leave(self, *rooms: str) -> RequestResult:
        """Make the socket leave rooms on its node (see :meth:`join`).

        Raises:
            InvalidState: the broker is closed.
        """
        return await self._on_node("sockets_leave", target=list(rooms))

    async def disconnect(self, close: bool = False) -> RequestResult:
        """Disconnect the socket (``close``: its connection too) on its node.

        Raises:
            InvalidState: the broker is closed.
        """
        return await self._on_node("disconnect_sockets", close=close)

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.sid} {self.namespace.name} on {self.node_id}>"
