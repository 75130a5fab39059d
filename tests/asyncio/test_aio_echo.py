"""Echo, fragments, ping and the closing handshake over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tether

BOUND = 10.0


async def echo(ws: tether.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def uri(server: tether.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_echo_text_and_binary(serve_ws: Any, compression: str | None) -> None:
    server = await serve_ws(echo, compression=compression)
    async with asyncio.timeout(BOUND), tether.connect(uri(server), compression=compression) as ws:
        for message in ["hello", "", "héllo wörld " * 500, b"\x00\xff\x10", b"", bytes(70000)]:
            await ws.send(message)
            reply = await ws.recv()
            assert reply == message
            assert type(reply) is type(message)
        assert (ws.extensions is not None) is (compression is not None)


async def test_echo_fragmented_from_a_list(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        await ws.send(["frag", "ment", "ed"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"\x01", b"\x02", b"\x03"])
        assert await ws.recv() == b"\x01\x02\x03"


async def test_echo_fragmented_from_an_async_iterator(serve_ws: Any) -> None:
    server = await serve_ws(echo)

    async def parts() -> AsyncIterator[str]:
        for piece in ("async ", "frag", "ments"):
            await asyncio.sleep(0)
            yield piece

    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        await ws.send(parts())
        assert await ws.recv() == "async fragments"


async def test_fragments_of_mixed_types_are_refused(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        with pytest.raises(TypeError):
            await ws.send(["text", b"bytes"])


async def test_server_sends_fragments_to_client(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.send(iter(["from ", "the ", "server"]))
        await ws.recv()

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        assert await ws.recv() == "from the server"
        await ws.send("done")


async def test_messages_keep_their_order(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        for i in range(200):
            await ws.send(str(i))
        assert [await ws.recv() for _ in range(200)] == [str(i) for i in range(200)]


async def test_ping_returns_the_round_trip_time(serve_ws: Any) -> None:
    server = await serve_ws(echo)
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        rtt = await ws.ping()
        assert isinstance(rtt, float)
        assert rtt >= 0.0
        rtt = await ws.ping(b"custom payload")
        assert isinstance(rtt, float)
        both = await asyncio.gather(ws.ping(), ws.ping())
        assert all(isinstance(x, float) for x in both)


async def test_server_can_ping_the_client(serve_ws: Any) -> None:
    rtts: list[float] = []

    async def handler(ws: tether.WebSocket) -> None:
        rtts.append(await ws.ping())
        await ws.send("pinged")
        await ws.recv()

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND), tether.connect(uri(server)) as ws:
        # the client answers pings while nobody is reading from it
        assert await ws.recv() == "pinged"
        await ws.send("bye")
    assert len(rtts) == 1 and isinstance(rtts[0], float)


async def test_client_close_code_and_reason_reach_both_sides(serve_ws: Any) -> None:
    seen: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        try:
            await ws.recv()
        except tether.ConnectionClosed as exc:
            await ws.wait_closed()
            seen.set_result((type(exc), exc.code, exc.reason, ws.close_code, ws.close_reason))

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        assert ws.close_code is None and ws.close_reason is None
        await ws.close(4000, "client says bye")
        assert ws.closed
        assert ws.close_code == 4000  # the server echoed the code
        kind, code, reason, close_code, close_reason = await seen
    assert kind is tether.ConnectionClosedError  # 4000 is not a "normal" closure
    assert (code, reason) == (4000, "client says bye")
    assert (close_code, close_reason) == (4000, "client says bye")


async def test_server_close_code_and_reason_reach_the_client(serve_ws: Any) -> None:
    server_side: dict[str, Any] = {}

    async def handler(ws: tether.WebSocket) -> None:
        await ws.close(3001, "server says bye")
        server_side["code"] = ws.close_code
        server_side["closed"] = ws.closed

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        with pytest.raises(tether.ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason) == (3001, "server says bye")
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (3001, "server says bye")
        while "closed" not in server_side:
            await asyncio.sleep(0.01)
    assert server_side == {"code": 3001, "closed": True}


async def test_handler_returning_closes_1000_with_connection_closed_ok(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.send("only message")

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        assert await ws.recv() == "only message"
        with pytest.raises(tether.ConnectionClosedOK) as info:
            await ws.recv()
        assert info.value.code == 1000
        await ws.wait_closed()
        assert ws.close_code == 1000
        assert ws.ready_state is tether.State.CLOSED
        with pytest.raises(tether.ConnectionClosed):
            await ws.send("too late")


async def test_handler_raising_closes_1011_with_connection_closed_error(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        raise RuntimeError("boom")

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        with pytest.raises(tether.ConnectionClosedError) as info:
            async for _ in ws:
                pass
        assert info.value.code == 1011


async def test_async_for_ends_on_normal_close(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        for i in range(3):
            await ws.send(f"m{i}")

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        ws = await tether.connect(uri(server))
        received = [message async for message in ws]
    assert received == ["m0", "m1", "m2"]


async def test_server_async_for_ends_when_the_client_closes_normally(serve_ws: Any) -> None:
    finished: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    async def handler(ws: tether.WebSocket) -> None:
        got = [message async for message in ws]
        finished.set_result(got)

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        async with tether.connect(uri(server)) as ws:
            await ws.send("a")
            await ws.send(b"b")
        assert await finished == ["a", b"b"]


async def test_subprotocol_is_negotiated(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        await ws.send(str(ws.subprotocol))

    server = await serve_ws(handler, subprotocols=["v2", "v1"])
    async with asyncio.timeout(BOUND):
        async with tether.connect(uri(server), subprotocols=["v1", "v2"]) as ws:
            assert ws.subprotocol == "v2"
            assert await ws.recv() == "v2"
        async with tether.connect(uri(server), subprotocols=["v9"]) as ws:
            assert ws.subprotocol is None


async def test_request_path_and_headers_reach_the_handler(serve_ws: Any) -> None:
    async def handler(ws: tether.WebSocket) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.request.path}|{ws.request.query}|{ws.request.headers['X-Token']}")

    server = await serve_ws(handler)
    async with asyncio.timeout(BOUND):
        async with tether.connect(
            uri(server, "/room/7?user=ann"), additional_headers={"X-Token": "s3cret"}
        ) as ws:
            assert await ws.recv() == "/room/7|user=ann|s3cret"
