"""Parts of the Socket.IO / Engine.IO client that need no Socket.IO server (a few use a
bare TCP server that answers HTTP badly)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tether.asyncio.httpclient import HTTPConnection, header_list
from tether.engine.client import EngineClient, parse_url
from tether.engine.packets import OpenPayload, Packet, PacketType, encode_payload
from tether.exceptions import EngineConnectionError, HTTPError, TetherError
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


# --------------------------------------------------------------------------- polling errors
# The HTTP client (tether.asyncio.httpclient) raises the asyncio layer's errors; the
# Engine.IO client turns them into EngineConnectionError with the HTTP client's message.

HOST = "127.0.0.1"
WAIT = 15.0  # the bound on a wait that ends at once when things work


@contextlib.asynccontextmanager
async def _http_server(answer: bytes | None) -> AsyncIterator[int]:
    """A server that reads one request head, then writes ``answer`` and keeps the
    connection open (None: closes it without a word)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            if answer is None:
                writer.close()
                return
            writer.write(answer)
            await writer.drain()
            await reader.read()  # until the client goes

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


async def _handshake_error(port: int, **options: Any) -> EngineConnectionError:
    engine = EngineClient(
        f"http://{HOST}:{port}", on_message=_nothing, transports=["polling"], **options
    )
    with pytest.raises(EngineConnectionError) as info:
        await engine.connect()
    return info.value


async def test_unreachable_server_is_an_engine_connection_error() -> None:
    port = _free_port()
    exc = await _handshake_error(port)
    assert str(exc).startswith(f"cannot connect to {HOST}:{port}: ")
    assert isinstance(exc.__cause__, ConnectionError)
    assert not isinstance(exc.__cause__, EngineConnectionError)


@pytest.mark.parametrize(
    ("answer", "message", "status"),
    [
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope",
            "handshake refused: HTTP 400",
            400,
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed HTTP response: ", None),
        (None, "HTTP connection lost: closed by the server", None),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
            "response body larger than the limit (100 bytes)",
            None,
        ),
    ],
)
async def test_polling_handshake_failures_keep_their_messages(
    answer: bytes | None, message: str, status: int | None
) -> None:
    async with _http_server(answer) as port:
        exc = await _handshake_error(port, max_message_size=10)
    assert str(exc).startswith(message), exc
    assert exc.status == status


async def test_http_client_raises_neutral_errors() -> None:
    async with _http_server(b"NOT HTTP AT ALL\r\n\r\n") as port:
        conn = HTTPConnection(HOST, port)
        with pytest.raises(HTTPError) as malformed:
            await conn.request("GET", "/", timeout=WAIT)
        assert not isinstance(malformed.value, EngineConnectionError)
    # A server that never answers: the request's own bound.
    async with _http_server(b"") as port:
        conn = HTTPConnection(HOST, port)
        with pytest.raises(TimeoutError) as slow:
            await conn.request("GET", "/", timeout=0.1)
        assert isinstance(slow.value, TetherError)
        assert str(slow.value) == "GET timed out after 0.1s"
        conn.close()
    with pytest.raises(ConnectionError):
        await HTTPConnection(HOST, _free_port()).request("GET", "/", timeout=WAIT)


def test_host_header_and_header_list() -> None:
    assert HTTPConnection("::1", 8080).host_header == "[::1]:8080"
    assert HTTPConnection("example.com", 443, secure=True).host_header == "example.com"
    assert header_list({"a": "1"}) == header_list([("a", "1")]) == [("a", "1")]
    assert header_list(None) == []
