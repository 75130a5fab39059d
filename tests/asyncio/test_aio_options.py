"""The options shared by serve() and connect(): explicit keywords, one parser, one type."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import tether
from tether.asyncio import ConnectionOptions
from tether.asyncio.options import deflate_options
from tether.protocol import DeflateOptions, Side

BOUND = 10.0
SHARED = [
    "compression",
    "max_size",
    "max_queue",
    "write_limit",
    "ping_interval",
    "ping_timeout",
    "open_timeout",
    "close_timeout",
]


async def handler(ws: tether.WebSocket) -> None:
    await ws.wait_closed()


@pytest.mark.parametrize("api", [tether.serve, tether.connect], ids=["serve", "connect"])
def test_every_option_is_an_explicit_keyword(api: Any) -> None:
    # No **options: a type checker (mypy --strict) sees every name, and catches a typo.
    parameters = inspect.signature(api).parameters
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert set(SHARED) <= set(parameters)
    # The shared options have the same defaults on both sides.
    other = inspect.signature(tether.connect if api is tether.serve else tether.serve).parameters
    assert [parameters[n].default for n in SHARED] == [other[n].default for n in SHARED]


async def test_an_unknown_keyword_raises_type_error_at_once() -> None:
    with pytest.raises(TypeError, match="max_sise"):
        tether.serve(handler, "127.0.0.1", 0, max_sise=10)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="ping_intervall"):
        tether.connect("ws://127.0.0.1:9/", ping_intervall=1)  # type: ignore[call-arg]


async def test_an_unsupported_compression_raises_value_error_at_once() -> None:
    with pytest.raises(ValueError, match="brotli"):
        tether.serve(handler, "127.0.0.1", 0, compression="brotli")
    with pytest.raises(ValueError, match="brotli"):
        tether.connect("ws://127.0.0.1:9/", compression="brotli")


def test_rfc7692_deflate_defaults_of_each_side() -> None:
    server = deflate_options("deflate", Side.SERVER)
    client = deflate_options("deflate", Side.CLIENT)
    assert server == DeflateOptions(server_max_window_bits=15, mem_level=5)
    assert client == DeflateOptions()
    custom = DeflateOptions(threshold=0)
    assert deflate_options(custom, Side.SERVER) is custom
    assert deflate_options(None, Side.CLIENT) is None


async def test_options_reach_both_ends_of_a_real_connection(free_port: int) -> None:
    opened: asyncio.Future[tether.WebSocket] = asyncio.get_running_loop().create_future()

    async def on_connect(ws: tether.WebSocket) -> None:
        opened.set_result(ws)
        await ws.wait_closed()

    async with asyncio.timeout(BOUND):
        async with tether.serve(
            on_connect, "127.0.0.1", free_port, max_size=1234, max_queue=7, compression=None
        ) as server:
            assert server.options == ConnectionOptions(
                Side.SERVER, None, max_size=1234, max_queue=7
            )
            async with tether.connect(
                f"ws://127.0.0.1:{free_port}/", max_size=4321, write_limit=999, ping_interval=None
            ) as client:
                peer = await opened
                assert (peer.conn.max_size, peer.max_queue, peer.extensions) == (1234, 7, None)
                assert (client.conn.max_size, client.write_limit, client.ping_interval) == (
                    4321,
                    999,
                    None,
                )
