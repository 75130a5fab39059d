"""The messages that cross the cluster, and the handlers that receive them.

All are small frozen dataclasses (DESIGN.md, principle 2); the wire format that carries
them between processes is :mod:`tether.broker.wire`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Broadcast",
    "CommandKind",
    "MessageHandler",
    "NodeRequest",
    "RemoteCommand",
    "Reply",
    "RequestHandler",
    "RequestResult",
    "SessionRecord",
]

CommandKind = Literal["join", "leave", "disconnect", "server_side_emit"]

# Socket.IO packet types (socket.io-protocol v5).
EVENT = 2
BINARY_EVENT = 5


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A broadcast from another node or from an emitter.

    Attributes:
        namespace: the Socket.IO namespace.
        rooms: the target rooms; empty means every socket of the namespace.
        except_rooms: sockets in any of these rooms are skipped.
        data: the packet data, ``[event, *args]`` for an event (binary args are bytes).
        flags: the emitter's flags (``volatile``, ``compress``, ``timeout``...).
        origin: the uid of the publisher (a node id, or ``"emitter"``).
        message_id: the id shared by every copy of one broadcast (``None`` from emitters).
        packet_type: the Socket.IO packet type (2 EVENT, 5 BINARY_EVENT...).
        encoded: a packet the publisher encoded itself (then ``data`` is empty).
        offset: the broadcast's position in the cluster's recovery log (a durable
            broadcast, see :meth:`ClusterBroker.broadcast`), else ``None``.
    """

    namespace: str
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    data: tuple[Any, ...] = ()
    flags: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""
    message_id: str | None = None
    packet_type: int = EVENT
    encoded: bytes | str | None = None
    offset: str | None = None

    @property
    def event(self) -> str | None:
        """The event name of an event packet, else ``None``."""
        if self.packet_type in (EVENT, BINARY_EVENT) and self.data:
            first = self.data[0]
            return first if isinstance(first, str) else None
        return None

    @property
    def args(self) -> tuple[Any, ...]:
        """The arguments of an event packet (after the event name)."""
        return self.data[1:] if self.event is not None else ()


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """An emitter's request: make sockets join/leave rooms, disconnect them, or an event.

    Attributes:
        namespace: the Socket.IO namespace.
        kind: ``"join"``, ``"leave"``, ``"disconnect"`` or ``"server_side_emit"``.
        rooms: the sockets concerned are those in these rooms (empty: all of them).
        except_rooms: ... minus those in these rooms.
        target_rooms: for join/leave, the rooms to join or leave.
        close: for disconnect, whether to close the underlying connection.
        data: for server_side_emit, ``[event, *args]``.
        origin: the uid of the publisher (``"emitter"`` or a node id).
    """

    namespace: str
    kind: CommandKind
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    target_rooms: tuple[str, ...] = ()
    close: bool = False
    data: tuple[Any, ...] = ()
    origin: str = ""


@dataclass(frozen=True, slots=True)
class NodeRequest:
    """A request from a node, handed to the ``on_request`` handler of every node asked.

    Attributes:
        namespace: the Socket.IO namespace it concerns.
        kind: what is asked (the hub defines the kinds: ``"fetch_sockets"``...).
        payload: kind-specific data (msgpack-serializable for Redis).
        origin: the id of the node that asked.
        request_id: unique per request.
    """

    namespace: str
    kind: str
    payload: Any
    origin: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One node's answer to a :class:`NodeRequest` (internal, public for transports).

    Attributes:
        request_id: the id of the request answered.
        node_id: the node that answered.
        ok: whether the handler returned (``False``: it raised, or the node refused).
        data: the handler's return value when ``ok``.
        error: a description of the failure when not ``ok``.
    """

    request_id: str
    node_id: str
    ok: bool
    data: Any = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class RequestResult:
    """What :meth:`ClusterBroker.request` gathered.

    Attributes:
        replies: the return value of the handler of every node that answered, by node id.
        errors: the nodes whose handler raised (or that refused the request), by node id.
        missing: the nodes that were asked and did not answer (dead, or too slow).
        timed_out: ``True`` when the call returned because ``timeout`` passed.
        unsent: the nodes of ``missing`` the request was not sent to, as they were not
            alive when it was made: their handlers did not run it, so asking them again
            cannot run it twice.
    """

    replies: Mapping[str, Any]
    errors: Mapping[str, str]
    missing: frozenset[str]
    timed_out: bool
    unsent: frozenset[str] = frozenset()

    @property
    def complete(self) -> bool:
        """Every node asked answered without error."""
        return not self.missing and not self.errors and not self.timed_out


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The state of one Socket.IO session, kept by the cluster for recovery.

    Written while the socket lives (so a node that dies leaves it behind) and when it
    disconnects; taken once by the node the client reconnects to.

    Attributes:
        pid: the private session id the client sends back to recover.
        sid: the socket id (the recovered socket keeps it).
        namespace: the Socket.IO namespace.
        node: the node that held the socket when this was written.
        rooms: the socket's rooms (its own sid room included).
        data: the socket's ``data`` (msgpack-serializable).
        position: the recovery-log offset up to which the socket missed nothing
            (used when the client sends no offset), or ``None`` when unknown.
        connected: ``True`` while the socket was connected when this was written.
    """

    pid: str
    sid: str
    namespace: str
    node: str
    rooms: tuple[str, ...] = ()
    data: Any = None
    position: str | None = None
    connected: bool = True


MessageHandler = Callable[[Broadcast | RemoteCommand], Awaitable[None] | None]
RequestHandler = Callable[[NodeRequest], Any]
