"""The WebSocket transport: a session opened on it, or the upgrade from polling."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..exceptions import ConnectionClosed
from .packets import (
    _EIO_NOOP,
    _EIO_PING,
    _EIO_UPGRADE,
    EnginePacketError,
    Packet,
    PacketType,
    decode_packet,
    encode_packet,
)
from .session import _SESSION_OPEN, Session
from .transport import Transport

if TYPE_CHECKING:
    from .server import EngineServer

__all__: list[str] = []

logger = logging.getLogger("tether.engine")

_NOOP = Packet(PacketType.NOOP)


async def upgrade(engine: EngineServer, session: Session, ws: Transport) -> bool:
    """Run the probe and the upgrade of a polling session to ``ws``.

    Returns:
        Whether the session now runs over ``ws`` (False: ``ws`` is closed).
    """
    session._attach(ws)
    session._upgrading = True
    try:
        async with asyncio.timeout(engine.upgrade_timeout):
            while True:
                packet = decode_packet(await ws.recv())
                if packet.type is _EIO_PING and packet.data == "probe":
                    await ws.send("3probe", compress=False)  # now, before the noop
                    # Release the pending GET so the client can pause polling; any GET
                    # until the upgrade completes is answered at once (see polling.get).
                    session._probed = True
                    session._enqueue(_NOOP)
                elif packet.type is _EIO_UPGRADE:
                    break
                elif packet.type is _EIO_NOOP:
                    continue
                else:
                    raise EnginePacketError("unexpected packet during upgrade")
    except (TimeoutError, EnginePacketError, ConnectionClosed) as exc:
        logger.info("session %s: upgrade failed: %r", session.sid, exc)
        session._detach()
        session._upgrading = False
        session._probed = False
        await ws.close(1002 if isinstance(exc, EnginePacketError) else 1000)
        return False
    if session.state is not _SESSION_OPEN:
        await ws.close(1000)
        return False
    session.transport = "websocket"
    session._upgrading = False
    # Whatever waited for the next GET now goes over the WebSocket.
    pending = session._drain_queue()
    poll = session._poll
    if poll is not None and not poll.done():
        session._queue.append(_NOOP)
        poll.set_result(None)
    for packet in pending:
        if packet.type is not _EIO_NOOP:
            session._send_encoded(encode_packet(packet, binary_supported=True))
    return True


async def read(session: Session, ws: Transport) -> None:
    """Hand every message of ``ws`` to the session until the connection closes."""

    engine = session.engine
    limited = engine.message_rate is not None

    # Direct delivery: each message is handled as it is read, with no queue and no task
    # switch; the transport pauses reading while its outgoing buffer is full or the
    # layer above holds reading.
    def on_message(message: str | bytes) -> None:
        if session.state is not _SESSION_OPEN:
            return
        if limited and not engine.admit_packets(session, 1, "websocket"):
            return
        try:
            packet = decode_packet(message)
        except EnginePacketError:
            session.close("parse error", drain=False)
            return
        session._on_packet(packet)

    try:
        ws.on_message = on_message
        await ws.wait_closed()
    finally:
        if session.ws is ws:
            session.close("transport close", send_close=False)
