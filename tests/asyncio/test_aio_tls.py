"""wss:// with a throwaway CA (trustme): the server presents a certificate the client trusts."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import trustme

import tether

BOUND = 10.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


async def echo(ws: tether.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_wss_echo(
    serve_ws: Any, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    server = await serve_ws(echo, ssl=server_ssl)
    async with asyncio.timeout(BOUND):
        async with tether.connect(f"wss://127.0.0.1:{server.port}/", ssl=client_ssl) as ws:
            for message in ["secure", b"\x00" * 100000, "x" * 70000]:
                await ws.send(message)
                assert await ws.recv() == message
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object") is not None
            assert isinstance(await ws.ping(), float)
        assert ws.close_code == 1000


async def test_wss_with_server_hostname(
    serve_ws: Any, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    server = await serve_ws(echo, ssl=server_ssl)
    async with asyncio.timeout(BOUND):
        async with tether.connect(
            f"wss://127.0.0.1:{server.port}/", ssl=client_ssl, server_hostname="localhost"
        ) as ws:
            await ws.send("by name")
            assert await ws.recv() == "by name"


async def test_wss_refuses_an_untrusted_certificate(
    serve_ws: Any, server_ssl: ssl.SSLContext
) -> None:
    server = await serve_ws(echo, ssl=server_ssl)
    untrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    trustme.CA().configure_trust(untrusting)  # another CA
    async with asyncio.timeout(BOUND):
        with pytest.raises(ssl.SSLCertVerificationError):
            await tether.connect(f"wss://127.0.0.1:{server.port}/", ssl=untrusting)


async def test_ssl_context_for_a_ws_uri_is_a_local_error(client_ssl: ssl.SSLContext) -> None:
    with pytest.raises(tether.InvalidURI):
        tether.connect("ws://127.0.0.1:1/", ssl=client_ssl)
