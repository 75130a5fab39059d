"""``Socket.emit(compress=...)`` and ``BroadcastOperator.compress()`` decide per message
whether permessage-deflate compresses it: seen on the wire by a raw client (RSV1 bit and
payload size)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import pytest

from tether.realtime import Hub

from .serving import WAIT, wait_until

TEXT = "a" * 4000  # well above the deflate threshold, and very compressible


class RawClient:
    """A WebSocket client over a bare TCP stream that reports each frame's RSV1 bit."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, deflate: bool) -> tuple[RawClient, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode()
        assert head.startswith("HTTP/1.1 101"), head
        return cls(reader, writer), head.lower()

    async def frame(self) -> tuple[bool, int, bytes]:
        """The next frame: (RSV1 set, opcode, payload as sent)."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        return bool(b0 & 0x40), b0 & 0x0F, payload

    def send_text(self, text: str) -> None:
        # RFC 6455 5.3: a client masks every frame.
        data = text.encode()
        mask = os.urandom(4)
        assert len(data) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(bytes([0x81, 0x80 | len(data)]) + mask + masked)

    def close(self) -> None:
        self.writer.close()


async def _connected(hub: Hub, port: int, deflate: bool) -> tuple[RawClient, str, Any]:
    client, head = await RawClient.connect(port, deflate=deflate)
    _, _, opened = await client.frame()
    assert opened.startswith(b"0")
    client.send_text("40")
    _, _, connected = await client.frame()
    assert connected.startswith(b"40")
    await wait_until(lambda: len(hub.sockets) == 1)
    (socket,) = hub.sockets.values()
    return client, head, socket


@pytest.fixture
async def hub_port() -> Any:
    hub = Hub()
    async with hub.serve("127.0.0.1", 0, compression="deflate") as server:
        yield hub, server.port
    await hub.close()


async def test_emit_compress_flag_decides_rsv1(hub_port: Any) -> None:
    hub, port = hub_port
    client, head, socket = await _connected(hub, port, deflate=True)
    try:
        assert "permessage-deflate" in head
        await socket.emit("big", TEXT)  # compress=True by default
        rsv1, opcode, payload = await client.frame()
        assert (rsv1, opcode) == (True, 1)
        assert len(payload) < len(TEXT) // 10
        await socket.emit("big", TEXT, compress=False)
        rsv1, opcode, payload = await client.frame()
        assert (rsv1, opcode) == (False, 1)
        assert payload == f'42["big","{TEXT}"]'.encode()
    finally:
        client.close()


async def test_broadcast_compress_operator_decides_rsv1(hub_port: Any) -> None:
    hub, port = hub_port
    client, _, _ = await _connected(hub, port, deflate=True)
    try:
        await hub.emit("big", TEXT)  # encoded once, compressed for this connection
        rsv1, _, payload = await client.frame()
        assert rsv1 and len(payload) < len(TEXT) // 10
        await hub.compress(False).emit("big", TEXT)  # the shared uncompressed frame
        rsv1, _, payload = await client.frame()
        assert not rsv1
        assert payload == f'42["big","{TEXT}"]'.encode()
        await hub.to("nobody-else").compress(True).except_("x").emit("none")  # no target
        await hub.compress(True).emit("big", TEXT)
        rsv1, _, _ = await client.frame()
        assert rsv1
    finally:
        client.close()


async def test_without_negotiated_deflate_every_frame_is_plain(hub_port: Any) -> None:
    hub, port = hub_port
    client, head, socket = await _connected(hub, port, deflate=False)
    try:
        assert "permessage-deflate" not in head
        await socket.emit("big", TEXT)
        await hub.emit("big", TEXT)
        for _ in range(2):
            rsv1, _, payload = await client.frame()
            assert not rsv1 and payload == f'42["big","{TEXT}"]'.encode()
    finally:
        client.close()
