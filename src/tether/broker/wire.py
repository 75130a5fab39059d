"""Bytes on the Redis channels: encode and decode, with no I/O.

Broadcasts use the format of the socket.io classic redis adapter and of
``@socket.io/redis-emitter``, so an emitter configured with ``key=<prefix>`` publishes to a
tether cluster: msgpack ``[uid, packet, opts]`` with
``packet = {"type": 2, "data": [event, *args], "nsp": namespace}`` and
``opts = {"rooms": [...], "except": [...], "flags": {...}}``. Binary arguments are msgpack
bin (Node Buffers), decoded as :class:`bytes`. tether adds ``opts["tid"]``, the message id
shared by every copy of one broadcast (ignored by socket.io nodes); a packet tether
encoded itself travels as ``packet["tether"]`` instead of ``packet["data"]``.

Emitter requests are JSON on the request channel (``{"type": 2|3|4|6, "opts": {"rooms":
[...], "except": [...]}, "rooms": [...], "close": bool, "data": [...]}``); as the adapter
does, a payload starting with ``{`` is JSON and anything else msgpack.

Node channels carry tether's own maps, msgpack, with ``"v": 1``:
``{"v": 1, "t": "req", "id", "from", "ns", "kind", "data"}`` and
``{"v": 1, "t": "res", "id", "from", "ok", "data", "err"}``. Envelopes of the plain
:meth:`~tether.broker.base.Broker.publish` are ``{"v": 1, "kind", "ns", "origin",
"payload"}``.

A durable broadcast (one kept in the recovery log, a Redis stream) is published as
``0xC1 OFFSET 0x20 BROADCAST``: 0xC1 is the one byte msgpack never uses, so no socket.io
node or emitter message starts with it, and ``OFFSET`` is the broadcast's stream entry
id, given by Redis in the same script that logs and publishes it. Session records
(:class:`~tether.broker.messages.SessionRecord`) are msgpack maps with ``"v": 1``.

Every decoder raises :class:`~tether.exceptions.PacketError` on bytes it cannot use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]

from ..exceptions import PacketError
from .base import Envelope
from .messages import Broadcast, CommandKind, NodeRequest, RemoteCommand, Reply, SessionRecord

__all__ = [
    "COMMAND_TYPES",
    "decode_broadcast",
    "decode_command",
    "decode_envelope",
    "decode_node_message",
    "decode_session",
    "encode_broadcast",
    "encode_envelope",
    "encode_reply",
    "encode_request",
    "encode_session",
    "split_offset",
]

WIRE_VERSION = 1

# socket.io-adapter RequestType values the emitter sends; the others (SOCKETS, ALL_ROOMS,
# REMOTE_FETCH, ...) are socket.io node-to-node requests, which tether does not answer.
COMMAND_TYPES: Mapping[int, CommandKind] = {
    2: "join",
    3: "leave",
    4: "disconnect",
    6: "server_side_emit",
}


def _pack(obj: Any) -> bytes:
    try:
        return cast(bytes, msgpack.packb(obj, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot encode for the broker: {exc}") from exc


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise PacketError(f"not msgpack: {exc}") from exc


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PacketError(f"{what} must be a list of strings")
    return tuple(value)


def encode_broadcast(message: Broadcast) -> bytes:
    """Encode a broadcast as ``[uid, packet, opts]`` msgpack.

    Raises:
        TypeError: the data holds something msgpack cannot carry.
    """
    packet: dict[str, Any] = {"type": message.packet_type, "nsp": message.namespace}
    if message.encoded is not None:
        packet["tether"] = message.encoded
    else:
        packet["data"] = list(message.data)
    opts: dict[str, Any] = {
        "rooms": list(message.rooms),
        "except": list(message.except_rooms),
        "flags": dict(message.flags),
    }
    if message.message_id is not None:
        opts["tid"] = message.message_id
    return _pack([message.origin, packet, opts])


def decode_broadcast(data: bytes, namespace: str) -> Broadcast:
    """Decode ``[uid, packet, opts]``; ``namespace`` is the one of the channel.

    Raises:
        PacketError: not such a message, or one for another namespace.
    """
    obj = _unpack(data)
    if not (isinstance(obj, list) and len(obj) == 3):
        raise PacketError("a broadcast is [uid, packet, opts]")
    uid, packet, opts = obj
    if not isinstance(uid, str) or not isinstance(packet, dict) or not isinstance(opts, dict):
        raise PacketError("a broadcast is [str, map, map]")
    nsp = packet.get("nsp", "/")
    if nsp != namespace:
        raise PacketError(f"packet of namespace {nsp!r} on the channel of {namespace!r}")
    packet_type = packet.get("type")
    if not isinstance(packet_type, int):
        raise PacketError("packet type must be an integer")
    encoded = packet.get("tether")
    if encoded is not None and not isinstance(encoded, bytes | str):
        raise PacketError("an encoded packet must be bytes or str")
    body = packet.get("data", [])
    if not isinstance(body, list):
        body = [body]
    flags = opts.get("flags") or {}
    if not isinstance(flags, dict):
        raise PacketError("flags must be a map")
    tid = opts.get("tid")
    return Broadcast(
        namespace=namespace,
        rooms=_strings(opts.get("rooms"), "rooms"),
        except_rooms=_strings(opts.get("except"), "except"),
        data=tuple(body),
        flags=flags,
        origin=uid,
        message_id=tid if isinstance(tid, str) else None,
        packet_type=packet_type,
        encoded=encoded,
    )


def decode_command(data: bytes, namespace: str) -> RemoteCommand | None:
    """Decode a request from the request channel.

    Returns:
        The command, or ``None`` for a request type tether does not handle.

    Raises:
        PacketError: not a request.
    """
    if data[:1] == b"{":
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PacketError(f"not JSON: {exc}") from exc
    else:
        obj = _unpack(data)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), int):
        raise PacketError("a request is a map with an integer type")
    kind = COMMAND_TYPES.get(obj["type"])
    if kind is None:
        return None
    opts = obj.get("opts") or {}
    if not isinstance(opts, dict):
        raise PacketError("opts must be a map")
    body = obj.get("data", [])
    origin = obj.get("uid", "emitter")
    return RemoteCommand(
        namespace=namespace,
        kind=kind,
        rooms=_strings(opts.get("rooms"), "rooms"),
        except_rooms=_strings(opts.get("except"), "except"),
        target_rooms=_strings(obj.get("rooms"), "rooms") if kind in ("join", "leave") else (),
        close=bool(obj.get("close", False)),
        data=tuple(body) if isinstance(body, list) else (body,),
        origin=origin if isinstance(origin, str) else "emitter",
    )


def encode_request(request: NodeRequest) -> bytes:
    """Encode a request for a node channel.

    Raises:
        TypeError: the payload holds something msgpack cannot carry.
    """
    return _pack(
        {
            "v": WIRE_VERSION,
            "t": "req",
            "id": request.request_id,
            "from": request.origin,
            "ns": request.namespace,
            "kind": request.kind,
            "data": request.payload,
        }
    )


def encode_reply(reply: Reply) -> bytes:
    """Encode a reply for a node channel.

    Raises:
        TypeError: the reply holds something msgpack cannot carry.
    """
    return _pack(
        {
            "v": WIRE_VERSION,
            "t": "res",
            "id": reply.request_id,
            "from": reply.node_id,
            "ok": reply.ok,
            "data": reply.data,
            "err": reply.error,
        }
    )


def decode_node_message(data: bytes) -> NodeRequest | Reply:
    """Decode a message of a node channel.

    Raises:
        PacketError: not a request or reply of a known version.
    """
    obj = _unpack(data)
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise PacketError("a node message is a map with v=1")
    try:
        if obj["t"] == "req":
            return NodeRequest(
                namespace=str(obj["ns"]),
                kind=str(obj["kind"]),
                payload=obj.get("data"),
                origin=str(obj["from"]),
                request_id=str(obj["id"]),
            )
        if obj["t"] == "res":
            return Reply(
                request_id=str(obj["id"]),
                node_id=str(obj["from"]),
                ok=bool(obj["ok"]),
                data=obj.get("data"),
                error=str(obj.get("err", "")),
            )
    except KeyError as exc:
        raise PacketError(f"node message without {exc}") from None
    raise PacketError(f"unknown node message type {obj.get('t')!r}")


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode an envelope of the plain publish/subscribe API.

    Raises:
        TypeError: the payload holds something msgpack cannot carry.
    """
    return _pack(
        {
            "v": WIRE_VERSION,
            "kind": envelope.kind,
            "ns": envelope.namespace,
            "origin": envelope.origin,
            "payload": envelope.payload,
        }
    )


def decode_envelope(data: bytes) -> Envelope:
    """Decode an envelope.

    Raises:
        PacketError: not an envelope.
    """
    obj = _unpack(data)
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise PacketError("an envelope is a map with v=1")
    payload = obj.get("payload") or {}
    if not isinstance(payload, dict):
        raise PacketError("an envelope payload is a map")
    return Envelope(
        kind=str(obj.get("kind", "")),
        namespace=str(obj.get("ns", "")),
        origin=str(obj.get("origin", "")),
        payload=payload,
    )


DURABLE_MARK = 0xC1  # never used by msgpack: no other message starts with it


def split_offset(data: bytes) -> tuple[str | None, bytes]:
    """Split a published message into its recovery offset (durable broadcasts only)
    and the broadcast bytes.

    Raises:
        PacketError: a durable mark without an offset.
    """
    if not data or data[0] != DURABLE_MARK:
        return None, data
    end = data.find(b" ", 1)
    if end < 2:
        raise PacketError("a durable broadcast without its offset")
    try:
        return data[1:end].decode("ascii"), data[end + 1 :]
    except UnicodeDecodeError:
        raise PacketError("a durable broadcast offset must be ASCII") from None


def encode_session(record: SessionRecord) -> bytes:
    """Encode a session record.

    Raises:
        TypeError: ``data`` holds something msgpack cannot carry.
    """
    return _pack(
        {
            "v": WIRE_VERSION,
            "pid": record.pid,
            "sid": record.sid,
            "ns": record.namespace,
            "node": record.node,
            "rooms": list(record.rooms),
            "data": record.data,
            "pos": record.position,
            "on": record.connected,
        }
    )


def decode_session(data: bytes, position: str | None = None) -> SessionRecord:
    """Decode a session record (``position``, when given, replaces the stored one).

    Raises:
        PacketError: not a session record.
    """
    obj = _unpack(data)
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise PacketError("a session record is a map with v=1")
    try:
        pos = position if position is not None else obj.get("pos")
        return SessionRecord(
            pid=str(obj["pid"]),
            sid=str(obj["sid"]),
            namespace=str(obj["ns"]),
            node=str(obj["node"]),
            rooms=_strings(obj.get("rooms"), "rooms"),
            data=obj.get("data"),
            position=pos if isinstance(pos, str) and pos else None,
            connected=bool(obj.get("on", False)),
        )
    except KeyError as exc:
        raise PacketError(f"session record without {exc}") from None
