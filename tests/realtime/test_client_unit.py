"""Parts of the Socket.IO / Engine.IO client that need no server."""

from __future__ import annotations

import pytest

from tether.engine.client import EngineClient, parse_url
from tether.engine.packets import OpenPayload, Packet, PacketType, encode_payload
from tether.realtime.client import CLIENT_EVENTS, BufferFull, Client


def test_parse_url_schemes_and_query() -> None:
    url = parse_url("https://example.com/ignored?token=a%20b&x=1", "socket.io")
    assert (url.secure, url.host, url.port, url.path) == (True, "example.com", 443, "/socket.io/")
    assert url.target(transport="polling") == ("/socket.io/?EIO=4&transport=polling&token=a+b&x=1")
    assert parse_url("ws://[::1]:8080", "/socket.io/").websocket_uri(transport="websocket") == (
        "ws://[::1]:8080/socket.io/?EIO=4&transport=websocket"
    )
    with pytest.raises(ValueError):
        parse_url("ftp://example.com")


async def _nothing(data: str | bytes) -> None:
    return None


async def test_post_batches_respect_max_payload() -> None:
    engine = EngineClient("http://127.0.0.1:1", on_message=_nothing)
    engine.handshake = OpenPayload("sid", (), 25000, 20000, 100)
    for i in range(10):
        engine._outbox.append(Packet(PacketType.MESSAGE, f"{i}" * 30))
    engine._outbox.append(Packet(PacketType.MESSAGE, b"\x00" * 10))
    batches = []
    while engine._outbox:
        batches.append(engine._take_batch())
    assert sum(len(b) for b in batches) == 11
    for batch in batches:
        assert len(encode_payload(batch).encode()) <= 100


async def test_oversized_packet_goes_alone() -> None:
    engine = EngineClient("http://127.0.0.1:1", on_message=_nothing)
    engine.handshake = OpenPayload("sid", (), 25000, 20000, 10)
    engine._outbox.extend([Packet(PacketType.MESSAGE, "x" * 50), Packet(PacketType.MESSAGE, "y")])
    assert len(engine._take_batch()) == 1
    assert len(engine._take_batch()) == 1


async def test_engine_rejects_unknown_transport_in_loop() -> None:
    with pytest.raises(ValueError):
        EngineClient("http://127.0.0.1:1", on_message=_nothing, transports=["carrier-pigeon"])


async def test_emits_buffer_before_connect_and_overflow_raises() -> None:
    client = Client(max_buffered=1)
    await client.emit("a", 1)
    await client.emit("v", 1, volatile=True)  # dropped, not buffered
    assert client.socket("/").buffered == 1
    with pytest.raises(BufferFull):
        await client.emit("b", 2)


async def test_reserved_event_names_are_refused() -> None:
    client = Client()
    for name in ("connect", "disconnect", "connect_error"):
        with pytest.raises(ValueError):
            await client.emit(name)


def test_client_events_register_on_the_client() -> None:
    client = Client()
    for name in CLIENT_EVENTS:
        client.on(name, lambda *a: None, namespace="/chat")
    assert set(client._client_handlers) == CLIENT_EVENTS
    assert client.socket("/chat").handlers == {}


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        Client(randomization_factor=2)
    with pytest.raises(ValueError):
        Client(reconnection_attempts=-1)
    with pytest.raises(ValueError):
        Client().socket("chat")
