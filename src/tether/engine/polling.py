"""The HTTP long-polling transport: a GET takes what is queued, a POST brings packets."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..protocol.handshake import Request, Response
from .http import BAD_REQUEST
from .packets import EnginePacketError, Packet, PacketType, decode_payload, encode_payload
from .session import _SESSION_OPEN, Session

if TYPE_CHECKING:
    from .server import EngineServer

__all__: list[str] = []

_NOOP = Packet(PacketType.NOOP)


async def get(engine: EngineServer, session: Session, request: Request) -> Response:
    """Answer a GET with the queued packets, waiting (until the next ping at most) for
    one when none is queued."""
    if session._poll is not None and not session._poll.done():
        # Two concurrent GETs: the reference server fails the session.
        session.close("transport error", drain=False)
        return engine.http.error(request, BAD_REQUEST)
    if not session._queue and session.state is _SESSION_OPEN and not session._probed:
        fut = session._poll = asyncio.get_running_loop().create_future()
        try:
            await fut
        finally:
            session._poll = None
    if not session._queue:
        return engine.http.ok(request, encode_payload([_NOOP]))
    return engine.http.ok(request, encode_payload(session._drain_queue()))


def post(engine: EngineServer, session: Session, request: Request) -> Response:
    """Hand the packets of a POST body to the session."""
    body = request.body
    if len(body) > engine.max_payload:
        session.close("transport error", drain=False)
        return Response(413, engine.http.cors(request), b"Payload Too Large")
    try:
        packets = decode_payload(body)
    except EnginePacketError:
        session.close("parse error", drain=False)
        return engine.http.error(request, BAD_REQUEST)
    if not engine.admit_packets(session, len(packets), "polling"):
        return engine.http.error(request, BAD_REQUEST, 429, "Too many packets")
    for packet in packets:
        if session.state is not _SESSION_OPEN:
            break
        session._on_packet(packet)
    return engine.http.ok(request, "ok", "text/html")
