"""Channel names and what each channel carries.

The socket.io classic redis adapter and @socket.io/redis-emitter use these exact names
(with their key "socket.io"), so an emitter configured with our prefix reaches us.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ChannelInfo",
    "envelope_channel",
    "namespace_channel",
    "node_channel",
    "request_channel",
    "room_channel",
]


def namespace_channel(prefix: str, namespace: str) -> str:
    """The channel of broadcasts to a whole namespace (or to several rooms)."""
    return f"{prefix}#{namespace}#"


def room_channel(prefix: str, namespace: str, room: str) -> str:
    """The channel of broadcasts to one room."""
    return f"{prefix}#{namespace}#{room}#"


def request_channel(prefix: str, namespace: str) -> str:
    """The channel of the emitter's requests (join, leave, disconnect, server-side emit)."""
    return f"{prefix}-request#{namespace}#"


def node_channel(prefix: str, node_id: str) -> str:
    """The channel of one node: requests to it and replies to its requests."""
    return f"{prefix}#node#{node_id}#"


def envelope_channel(prefix: str, channel: str) -> str:
    """The channel that carries the plain :meth:`Broker.publish` envelopes of ``channel``."""
    return f"{prefix}#env#{channel}"


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a subscribed channel carries (kept by the broker for every channel).

    Attributes:
        kind: ``"room"``, ``"namespace"``, ``"request"``, ``"node"`` or ``"envelope"``.
        namespace: the namespace (empty for node and envelope channels).
        room: the room of a room channel, else ``None``.
        name: the plain channel name of an envelope channel, else ``None``.
    """

    kind: Literal["room", "namespace", "request", "node", "envelope"]
    namespace: str = ""
    room: str | None = None
    name: str | None = None
