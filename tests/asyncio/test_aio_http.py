"""The HTTP side of the server: process_request, origins, plain HTTP on the same port, 426,
and max_size over real sockets."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import tether
from tether.exceptions import PayloadTooBig

BOUND = 10.0


async def echo(ws: tether.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def uri(server: tether.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def http_exchange(port: int, request: bytes) -> bytes:
    """Send raw HTTP bytes and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(BOUND):
            return await reader.read()
    finally:
        writer.close()


async def test_process_request_response_reaches_the_client_as_invalid_status(
    serve_ws: Any,
) -> None:
    def process_request(request: tether.Request) -> tether.Response | None:
        if request.headers.get("Authorization") != "Bearer good":
            return tether.Response(401, [("WWW-Authenticate", "Bearer")], b"token required")
        return None

    server = await serve_ws(echo, process_request=process_request)
    async with asyncio.timeout(BOUND):
        with pytest.raises(tether.InvalidStatus) as info:
            await tether.connect(uri(server))
        assert info.value.status == 401
        assert info.value.body == b"token required"
        assert ("www-authenticate", "Bearer") in [(k.lower(), v) for k, v in info.value.headers]
        async with tether.connect(
            uri(server), additional_headers=[("Authorization", "Bearer good")]
        ) as ws:
            await ws.send("in")
            assert await ws.recv() == "in"


async def test_async_process_request_is_awaited(serve_ws: Any) -> None:
    async def process_request(request: tether.Request) -> tether.Response | None:
        await asyncio.sleep(0)
        if request.path == "/private":
            return tether.Response(403, body=b"nope")
        return None

    server = await serve_ws(echo, process_request=process_request)
    async with asyncio.timeout(BOUND):
        with pytest.raises(tether.InvalidStatus) as info:
            await tether.connect(uri(server, "/private"))
        assert info.value.status == 403
        async with tether.connect(uri(server, "/public")) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"


async def test_origin_not_allowed_gets_403(serve_ws: Any) -> None:
    server = await serve_ws(echo, origins=["https://good.example"])
    async with asyncio.timeout(BOUND):
        with pytest.raises(tether.InvalidStatus) as info:
            await tether.connect(uri(server), origin="https://evil.example")
        assert info.value.status == 403
        with pytest.raises(tether.InvalidStatus) as info:
            await tether.connect(uri(server))  # no Origin at all
        assert info.value.status == 403
        async with tether.connect(uri(server), origin="https://good.example") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"


async def test_message_over_server_max_size_closes_1009(serve_ws: Any) -> None:
    server = await serve_ws(echo, max_size=1024)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        await ws.send(b"x" * 1024)
        assert await ws.recv() == b"x" * 1024
        await ws.send(bytes(range(256)) * 8)  # 2048 bytes
        with pytest.raises(tether.ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1009


async def test_message_over_client_max_size_fails_with_the_cause_kept(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.send(b"y" * 4096)
        await ws.wait_closed()

    server = await serve_ws(handler, compression=None)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server), max_size=1000)
        with pytest.raises(tether.ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.sent_code == 1009
        assert isinstance(info.value.__cause__, PayloadTooBig)
        assert info.value.__cause__.code == 1009


async def test_http_handler_serves_plain_get_on_the_same_port(serve_ws: Any) -> None:
    async def http_handler(request: tether.Request) -> tether.Response:
        return tether.Response(200, [("Content-Type", "text/plain")], f"ok {request.path}".encode())

    server = await serve_ws(echo, http_handler=http_handler)
    answer = await http_exchange(
        server.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"ok /health"
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        await ws.send("and websockets too")
        assert await ws.recv() == "and websockets too"


async def test_http_handler_keeps_the_connection_alive(serve_ws: Any) -> None:
    async def http_handler(request: tether.Request) -> tether.Response:
        return tether.Response(200, body=request.path.encode())

    server = await serve_ws(echo, http_handler=http_handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        async with asyncio.timeout(BOUND):
            for path in (b"/a", b"/b"):
                writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 ")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                assert await reader.readexactly(length) == path
    finally:
        writer.close()


async def test_plain_get_without_http_handler_gets_426(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    answer = await http_exchange(
        server.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"upgrade: websocket" in answer.lower()


async def test_bad_websocket_version_over_the_wire_gets_426(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    answer = await http_exchange(
        server.port,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13" in answer.lower()


async def test_malformed_http_gets_400(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    answer = await http_exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_error_response_survives_unread_request_bytes(serve_ws: Any) -> None:
    # A refused handshake followed by bytes the server never reads (a body, pipelined
    # requests): the server half-closes and discards them, so the client reads the whole
    # 403 and a clean EOF rather than a reset.
    server = await serve_ws(echo, origins=["https://good.example"])
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Origin: https://evil.example\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock = socket.socket()
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    received = b""
    errors: list[str] = []
    try:
        async with asyncio.timeout(BOUND):
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            try:
                await loop.sock_sendall(sock, request + b"x" * (8 * 1024 * 1024))
            except ConnectionError as exc:
                errors.append(f"send: {exc!r}")
            while True:
                try:
                    chunk = await loop.sock_recv(sock, 65536)
                except ConnectionError as exc:
                    errors.append(f"recv: {exc!r}")
                    break
                if not chunk:
                    break
                received += chunk
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 403")
    assert errors == []
