"""tether's WebSocket core against real, independent peers.

- tether client <-> ``websockets`` server (Python, in this process) and Node ``ws`` server
  (``tests/node/ws_echo_server.js``): one suite, parametrized over the two peers
- Node ``ws`` client (``tests/node/ws_client.js``) <-> tether server
- ``websockets`` client <-> tether server

Each pairing checks text, binary, a 1 MiB message, fragmented messages both ways, pings
both ways, close code/reason propagation both ways and permessage-deflate (RFC 7692)
negotiated and really used on the wire, with and without compression.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tether

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"

STEP = 5.0  # bound for any single send/recv/handshake
MIB = 2**20
UNICODE = "h\u00e9llo w\u00f6rld \u2713 \U0001f680 \u4e2d\u6587"
COMPRESSIBLE = "tether compresses repetitive text. " * 8192  # 280 KiB

COMPRESSIONS = [pytest.param(None, id="plain"), pytest.param("deflate", id="deflate")]


async def recv(ws: Any, timeout: float = STEP) -> Any:
    return await asyncio.wait_for(ws.recv(), timeout)


async def echo(ws: Any, message: Any) -> Any:
    await asyncio.wait_for(ws.send(message), STEP)
    return await recv(ws)


async def fragments(*parts: Any) -> AsyncIterator[Any]:
    for part in parts:
        yield part
        await asyncio.sleep(0)  # let each fragment go out as its own frame


def pattern(n: int, modulo: int) -> bytes:
    """``n`` bytes, byte i being ``i % modulo`` (what ``cmd:big``, ``cmd:binfragments`` send)."""
    whole, rest = divmod(n, modulo)
    return bytes(range(modulo)) * whole + bytes(range(rest))


def extension_text(extensions: Any) -> str:
    """Normalise negotiated extensions (a header string or a list) to lower-case text."""
    if extensions is None:
        return ""
    if isinstance(extensions, str):
        return extensions.lower()
    return ", ".join(str(getattr(e, "name", e)) for e in extensions).lower()


async def wait_for_log(server: Any, text: str, start: int) -> None:
    """Wait (bounded) until the Node server's stderr, past offset ``start``, contains ``text``."""
    async with asyncio.timeout(STEP):
        while text not in server.stderr[start:]:
            await asyncio.sleep(0.02)


def connect(port: int, path: str = "/", **kwargs: Any) -> Any:
    kwargs.setdefault("max_size", 4 * MIB)
    return tether.connect(f"ws://{HOST}:{port}{path}", **kwargs)


async def expect_closed(ws: Any) -> tether.ConnectionClosed:
    """Receive until the connection closes and return the ConnectionClosed raised."""
    async with asyncio.timeout(STEP):
        while True:
            try:
                await ws.recv()
            except tether.ConnectionClosed as exc:
                return exc


# ============================================================================================
# tether client <-> an echo/command server: `websockets` (Python) and Node `ws`, one suite
# ============================================================================================


class WebsocketsPeer:
    """The ``websockets`` server, in this process; it records closes and handler errors."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.log: Any = None

    async def start(
        self, compression: str | None = None, subprotocols: list[str] | None = None
    ) -> int:
        kwargs: dict[str, Any] = {"compression": compression}
        if subprotocols:
            kwargs["subprotocols"] = subprotocols
        port, self.log = await self.factory(**kwargs)
        return int(port)

    def assert_no_errors(self) -> None:
        assert not self.log.errors

    async def wait_closed(self, code: int, reason: str | None = None) -> None:
        """The server saw one connection end with ``code`` (and ``reason``, if given)."""
        closes = await self.log.wait_closes(1)
        assert closes[0][0] == code
        if reason is not None:
            assert closes == [(code, reason)]


class NodeWsPeer:
    """The Node ``ws`` server (one process per configuration, shared by a module's tests);
    it writes ``closed CODE REASON`` on stderr for every connection."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.server: Any = None
        self.offset = 0

    async def start(
        self, compression: str | None = None, subprotocols: list[str] | None = None
    ) -> int:
        self.server = self.factory(
            deflate=compression == "deflate", protocols=",".join(subprotocols or [])
        )
        self.offset = len(self.server.stderr)  # only what this test's connections log
        return int(self.server.port)

    def assert_no_errors(self) -> None:
        assert "Error" not in self.server.stderr[self.offset :]

    async def wait_closed(self, code: int, reason: str | None = None) -> None:
        text = f"closed {code}" if reason is None else f"closed {code} {reason}\n"
        await wait_for_log(self.server, text, self.offset)


@pytest.fixture(params=["websockets", "node-ws"])
def peer(request: Any) -> WebsocketsPeer | NodeWsPeer:
    if request.param == "websockets":
        return WebsocketsPeer(request.getfixturevalue("websockets_server"))
    return NodeWsPeer(request.getfixturevalue("ws_node_server"))


class TestTetherClientAgainstPeers:
    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_text(self, peer: Any, compression: str | None) -> None:
        port = await peer.start(compression)
        async with connect(port, compression=compression) as ws:
            for message in ["hello tether", UNICODE, "", "x" * 70_000]:
                got = await echo(ws, message)
                assert isinstance(got, str)
                assert got == message
        peer.assert_no_errors()

    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_binary(self, peer: Any, compression: str | None) -> None:
        port = await peer.start(compression)
        async with connect(port, compression=compression) as ws:
            for message in [bytes(range(256)), b"", b"\x00" * 126, os.urandom(65_536)]:
                got = await echo(ws, message)
                assert isinstance(got, bytes)
                assert got == message
        peer.assert_no_errors()

    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_one_mib_binary(self, peer: Any, compression: str | None) -> None:
        port = await peer.start(compression)
        async with connect(port, compression=compression, max_size=2 * MIB) as ws:
            random_mib = os.urandom(MIB)  # incompressible: deflate must not grow it past limits
            assert await echo(ws, random_mib) == random_mib
            await ws.send(f"cmd:big:{MIB}")
            got = await recv(ws)
            assert isinstance(got, bytes) and len(got) == MIB
            assert got == pattern(MIB, 251)
        peer.assert_no_errors()

    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_fragmented_both_ways(self, peer: Any, compression: str | None) -> None:
        port = await peer.start(compression)
        async with connect(port, compression=compression) as ws:
            # Sent by tether in fragments: the peer must see ONE message (its echo is whole).
            parts = ["frag-one/", "frag-\u00e9/", "frag-three"]
            await asyncio.wait_for(ws.send(fragments(*parts)), STEP)
            assert await recv(ws) == "".join(parts)
            bparts = [b"\x01" * 1000, b"\x02" * 70_000, b"\x03"]
            await asyncio.wait_for(ws.send(fragments(*bparts)), STEP)
            assert await recv(ws) == b"".join(bparts)
            # Sent by the peer in fragments: tether must reassemble.
            await ws.send("cmd:fragments:5:abc\u00e9")
            assert await recv(ws) == "abc\u00e9" * 5
            await ws.send("cmd:binfragments:4:300")
            assert await recv(ws) == pattern(300, 256) * 4
            # The connection is still in sync afterwards.
            assert await echo(ws, "after") == "after"
        peer.assert_no_errors()

    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_pings_both_ways(self, peer: Any, compression: str | None) -> None:
        port = await peer.start(compression)
        async with connect(port, compression=compression) as ws:
            rtt = await asyncio.wait_for(ws.ping(), STEP)
            assert isinstance(rtt, (int, float)) and 0 <= rtt < STEP
            # The peer pings; tether must answer with a pong carrying the same payload.
            await ws.send("cmd:ping:are-you-there")
            assert await recv(ws) == "pong:are-you-there"
            assert await echo(ws, "still here") == "still here"
        peer.assert_no_errors()

    @pytest.mark.parametrize(
        ("code", "reason"), [(1000, "bye"), (1001, "going away"), (4001, "custom: r\u00e9ason")]
    )
    async def test_close_from_server(self, peer: Any, code: int, reason: str) -> None:
        async with connect(await peer.start()) as ws:
            await ws.send(f"cmd:close:{code}:{reason}")
            exc = await expect_closed(ws)
            assert (exc.code, exc.reason) == (code, reason)
            expected = (
                tether.ConnectionClosedOK if code in (1000, 1001) else tether.ConnectionClosedError
            )
            assert isinstance(exc, expected)
            assert (ws.close_code, ws.close_reason) == (code, reason)

    async def test_normal_close_ends_iteration(self, peer: Any) -> None:
        async with connect(await peer.start()) as ws:
            await ws.send("one")
            await ws.send(b"two")
            await ws.send("cmd:close:1000:bye")
            received = []
            async with asyncio.timeout(STEP):
                async for message in ws:
                    received.append(message)
            assert received == ["one", b"two"]
            assert ws.close_code == 1000
            assert ws.close_reason == "bye"

    @pytest.mark.parametrize(("code", "reason"), [(1000, ""), (4002, "client says bye")])
    async def test_close_from_client(self, peer: Any, code: int, reason: str) -> None:
        async with connect(await peer.start()) as ws:
            assert await echo(ws, "hi") == "hi"
            await asyncio.wait_for(ws.close(code=code, reason=reason), STEP)
            assert ws.close_code == code  # the server echoes the code back (RFC 6455 5.5.1)
        await peer.wait_closed(code, reason)

    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_compression_negotiated_and_used(
        self, peer: Any, counting_relay: Any, compression: str | None
    ) -> None:
        # The server always offers deflate; only the client's choice varies. The relay
        # counts the bytes on the wire, whatever the peers report.
        relay = await counting_relay(await peer.start("deflate"))
        async with connect(relay.port, compression=compression) as ws:
            ext = extension_text(ws.extensions)
            assert ("permessage-deflate" in ext) is (compression == "deflate")
            assert await echo(ws, COMPRESSIBLE) == COMPRESSIBLE
            assert await echo(ws, COMPRESSIBLE.encode()) == COMPRESSIBLE.encode()
            await ws.send("cmd:info")
            info: dict[str, Any] = json.loads(await recv(ws))
        if compression == "deflate":
            assert extension_text(info["extensions"]) == "permessage-deflate"
            # Two copies of ~280 KiB each way: compressed, both directions stay tiny.
            assert relay.upstream < 20_000, relay.upstream
            assert relay.downstream < 20_000, relay.downstream
        else:
            assert extension_text(info["extensions"]) == ""
            assert relay.upstream > 2 * len(COMPRESSIBLE)
            assert relay.downstream > 2 * len(COMPRESSIBLE)

    async def test_deflate_offered_but_declined(self, peer: Any) -> None:
        async with connect(await peer.start(None), compression="deflate") as ws:
            assert "permessage-deflate" not in extension_text(ws.extensions)
            assert await echo(ws, COMPRESSIBLE) == COMPRESSIBLE

    async def test_subprotocol_path_and_headers(self, peer: Any) -> None:
        port = await peer.start(subprotocols=["chat.v2", "chat.v1"])
        async with connect(
            port,
            "/room/42?user=ada",
            subprotocols=["chat.v1"],
            additional_headers={"X-Tether-Test": "yes"},
        ) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send("cmd:info")
            info = json.loads(await recv(ws))
        assert info["path"] == "/room/42?user=ada"
        assert info.get("subprotocol", info.get("protocol")) == "chat.v1"
        assert info["headers"]["x-tether-test"] == "yes"

    async def test_incoming_message_over_max_size(self, peer: Any) -> None:
        async with connect(await peer.start(), max_size=1000) as ws:
            assert await echo(ws, b"x" * 1000) == b"x" * 1000  # the limit itself is allowed
            await ws.send("cmd:big:1001")
            exc = await expect_closed(ws)
            assert isinstance(exc, tether.ConnectionClosedError)
        # tether failed the connection with 1009 (RFC 6455 7.4.1): the peer saw that code.
        await peer.wait_closed(1009)


class TestTetherClientWebsocketsServer:
    """What only the ``websockets`` server is set up to show."""

    async def test_await_connect_form(self, websockets_server: Any) -> None:
        port, log = await websockets_server()
        ws = await asyncio.wait_for(connect(port), STEP)
        try:
            assert await echo(ws, "plain await") == "plain await"
        finally:
            await asyncio.wait_for(ws.close(), STEP)
        assert await log.wait_closes(1) == [(1000, "")]

    async def test_rejected_handshake_raises_invalid_status(self, websockets_server: Any) -> None:
        from http import HTTPStatus

        def process_request(connection: Any, request: Any) -> Any:
            response = connection.respond(HTTPStatus.FORBIDDEN, "no entry here\n")
            response.headers["X-Why"] = "test"
            return response

        port, _ = await websockets_server(process_request=process_request)
        with pytest.raises(tether.InvalidStatus) as info:
            async with asyncio.timeout(STEP):
                await connect(port)
        exc = info.value
        assert exc.status == 403
        assert b"no entry here" in exc.body
        assert ("x-why", "test") in [(k.lower(), v) for k, v in exc.headers]


class TestTetherClientNodeWsServer:
    """What only the Node ``ws`` server is set up to show."""

    async def test_abrupt_disconnect_is_1006(self, ws_node_server: Any) -> None:
        async with connect(ws_node_server().port) as ws:
            await ws.send("cmd:terminate")
            exc = await expect_closed(ws)
            assert isinstance(exc, tether.ConnectionClosedError)
            assert exc.code == 1006


# ============================================================================================
# Node `ws` client <-> tether server
# ============================================================================================

ALL_STEPS = (
    "text,unicode,empty_text,binary,empty_binary,big,fragmented,binfragmented,burst,ping,serverping"
)


async def run_ws_client(
    node: Any, url: str, *args: object, timeout: float = 30.0
) -> dict[str, Any]:
    res = await node.arun(
        "ws_client.js", url, "--timeout", int(timeout * 1000), *args, timeout=timeout + 5
    )
    report: dict[str, Any] = res.json()
    report["_describe"] = res.describe()
    return report


def assert_steps_ok(report: dict[str, Any], steps: str) -> None:
    assert report["opened"], report["_describe"]
    failed = {k: v for k, v in report["steps"].items() if not v.get("ok")}
    assert not failed, report["_describe"]
    assert sorted(report["steps"]) == sorted(steps.split(",")), report["_describe"]
    assert report["error"] is None, report["_describe"]


class TestNodeWsClientTetherServer:
    @pytest.mark.parametrize("server_compression", COMPRESSIONS)
    @pytest.mark.parametrize(
        "client_deflate", [False, True], ids=["client-plain", "client-deflate"]
    )
    async def test_scripted_exchange(
        self, node: Any, tether_server: Any, server_compression: str | None, client_deflate: bool
    ) -> None:
        port, log = await tether_server(compression=server_compression, max_size=2 * MIB)
        args: list[object] = ["--steps", ALL_STEPS]
        if client_deflate:
            args.append("--deflate")
        report = await run_ws_client(node, f"ws://{HOST}:{port}/echo", *args)
        assert_steps_ok(report, ALL_STEPS)
        assert report["steps"]["big"]["length"] == MIB
        negotiated = client_deflate and server_compression == "deflate"
        assert (report["extensions"] == "permessage-deflate") is negotiated, report["_describe"]
        # The reply to a close need only echo the code (RFC 6455 5.5.1), not the reason.
        assert report["closeCode"] == 1000, report["_describe"]
        assert await log.wait_closes(1) == [(1000, "done")]
        assert log.paths == ["/echo"]
        assert not log.errors

    @pytest.mark.parametrize(
        "client_deflate", [False, True], ids=["client-plain", "client-deflate"]
    )
    async def test_compression_on_the_wire(
        self, node: Any, tether_server: Any, client_deflate: bool
    ) -> None:
        port, _ = await tether_server(compression="deflate")
        args: list[object] = ["--steps", "compressible"]
        if client_deflate:
            args.append("--deflate")
        report = await run_ws_client(node, f"ws://{HOST}:{port}/", *args)
        assert_steps_ok(report, "compressible")
        step = report["steps"]["compressible"]
        if client_deflate:
            assert step["wireWritten"] < step["size"] // 20, step
            assert step["wireRead"] < step["size"] // 20, step
        else:
            assert step["wireWritten"] > step["size"], step
            assert step["wireRead"] > step["size"], step

    async def test_one_mib_within_default_max_size(self, node: Any, tether_server: Any) -> None:
        # serve()'s default max_size is 2**20: a message of exactly that size is allowed.
        port, _ = await tether_server()
        report = await run_ws_client(node, f"ws://{HOST}:{port}/", "--steps", "big", "--big", MIB)
        assert_steps_ok(report, "big")

    async def test_message_over_max_size_closes_1009(self, node: Any, tether_server: Any) -> None:
        port, _ = await tether_server(max_size=4096)
        ok = await run_ws_client(node, f"ws://{HOST}:{port}/", "--steps", "big", "--big", 4096)
        assert_steps_ok(ok, "big")
        report = await run_ws_client(node, f"ws://{HOST}:{port}/", "--steps", "big", "--big", 4097)
        assert report["opened"]
        assert report["closeCode"] == 1009, report["_describe"]
        assert not report["steps"]["big"]["ok"]

    @pytest.mark.parametrize(("code", "reason"), [(1001, "leaving"), (4001, "client r\u00e9ason")])
    async def test_close_from_client(
        self, node: Any, tether_server: Any, code: int, reason: str
    ) -> None:
        port, log = await tether_server()
        report = await run_ws_client(
            node, f"ws://{HOST}:{port}/", "--steps", "text", "--close", f"{code}:{reason}"
        )
        assert_steps_ok(report, "text")
        assert report["closeCode"] == code  # echoed back by tether (RFC 6455 5.5.1)
        assert await log.wait_closes(1) == [(code, reason)]

    @pytest.mark.parametrize(("code", "reason"), [(1000, "normal"), (4003, "tether says bye")])
    async def test_close_from_server(
        self, node: Any, tether_server: Any, code: int, reason: str
    ) -> None:
        port, _ = await tether_server()
        report = await run_ws_client(
            node,
            f"ws://{HOST}:{port}/",
            "--steps",
            "text",
            "--expect-close",
            f"cmd:close:{code}:{reason}",
        )
        assert_steps_ok(report, "text")
        assert (report["closeCode"], report["closeReason"]) == (code, reason), report["_describe"]

    async def test_server_ping_answered(self, node: Any, tether_server: Any) -> None:
        # tether pings the ws client; ws answers automatically and tether's ping() resolves.
        port, _ = await tether_server()
        report = await run_ws_client(node, f"ws://{HOST}:{port}/", "--steps", "serverping,text")
        assert_steps_ok(report, "serverping,text")

    async def test_subprotocol(self, node: Any, tether_server: Any) -> None:
        port, _ = await tether_server(subprotocols=["chat.v2", "chat.v1"])
        report = await run_ws_client(
            node, f"ws://{HOST}:{port}/", "--steps", "text", "--protocol", "chat.v1"
        )
        assert_steps_ok(report, "text")
        assert report["protocol"] == "chat.v1"
        assert report["responseHeaders"]["sec-websocket-protocol"] == "chat.v1"

    @pytest.mark.parametrize("is_async", [False, True], ids=["sync-hook", "async-hook"])
    async def test_process_request_rejects_with_status(
        self, node: Any, tether_server: Any, is_async: bool
    ) -> None:
        seen: list[str] = []

        def decide(request: Any) -> Any:
            seen.append(request.path)
            if request.path == "/private":
                return tether.Response(
                    401,
                    [("WWW-Authenticate", "Bearer"), ("X-Reason", "no token")],
                    b"token required\n",
                )
            return None

        async def decide_async(request: Any) -> Any:
            await asyncio.sleep(0)
            return decide(request)

        port, log = await tether_server(process_request=decide_async if is_async else decide)
        report = await run_ws_client(node, f"ws://{HOST}:{port}/private")
        assert not report["opened"], report["_describe"]
        assert report["status"] == 401
        assert report["body"] == "token required\n"
        assert report["responseHeaders"]["www-authenticate"] == "Bearer"
        assert report["responseHeaders"]["x-reason"] == "no token"
        # A request the hook lets through is upgraded as usual.
        report = await run_ws_client(node, f"ws://{HOST}:{port}/public", "--steps", "text")
        assert_steps_ok(report, "text")
        assert seen == ["/private", "/public"]
        assert log.paths == ["/public"]

    async def test_origin_allow_list(self, node: Any, tether_server: Any) -> None:
        port, log = await tether_server(origins=["https://good.example", "http://localhost:8080"])
        url = f"ws://{HOST}:{port}/"
        for origin in ["https://good.example", "http://localhost:8080"]:
            report = await run_ws_client(node, url, "--steps", "text", "--origin", origin)
            assert_steps_ok(report, "text")
        for origin in [
            "https://evil.example",
            "https://good.example.evil",
            "http://localhost:8081",
        ]:
            report = await run_ws_client(node, url, "--steps", "text", "--origin", origin)
            assert not report["opened"], report["_describe"]
            assert report["status"] == 403, report["_describe"]
        # A non-browser client sends no Origin: refused unless None is in the list.
        report = await run_ws_client(node, url, "--steps", "text")
        assert report["status"] == 403, report["_describe"]
        assert len(log.paths) == 2

    async def test_origin_allow_list_admitting_no_origin(
        self, node: Any, tether_server: Any
    ) -> None:
        port, log = await tether_server(origins=[None, "https://good.example"])
        url = f"ws://{HOST}:{port}/"
        report = await run_ws_client(node, url, "--steps", "text")
        assert_steps_ok(report, "text")
        report = await run_ws_client(
            node, url, "--steps", "text", "--origin", "https://good.example"
        )
        assert_steps_ok(report, "text")
        report = await run_ws_client(
            node, url, "--steps", "text", "--origin", "https://evil.example"
        )
        assert report["status"] == 403, report["_describe"]
        assert len(log.paths) == 2

    async def test_many_concurrent_clients(self, node: Any, tether_server: Any) -> None:
        port, log = await tether_server(compression="deflate")
        steps = "text,binary,fragmented,burst"
        reports = await asyncio.gather(
            *(
                run_ws_client(node, f"ws://{HOST}:{port}/c{i}", "--steps", steps, "--deflate")
                for i in range(5)
            )
        )
        for report in reports:
            assert_steps_ok(report, steps)
        await log.wait_closes(5)
        assert sorted(log.paths) == [f"/c{i}" for i in range(5)]


# ============================================================================================
# websockets client <-> tether server
# ============================================================================================


class TestWebsocketsClientTetherServer:
    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_messages(self, tether_server: Any, compression: str | None) -> None:
        from websockets.asyncio.client import connect as ws_connect

        port, log = await tether_server(compression="deflate", max_size=2 * MIB)
        async with ws_connect(
            f"ws://{HOST}:{port}/py", compression=compression, max_size=2 * MIB
        ) as ws:
            negotiated = [e.name for e in ws.protocol.extensions]
            assert negotiated == (["permessage-deflate"] if compression else [])
            for message in [
                "hello",
                UNICODE,
                "",
                bytes(range(256)),
                b"",
                os.urandom(MIB),
                COMPRESSIBLE,
            ]:
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), STEP) == message
            # Fragmented from websockets, reassembled by tether, echoed whole.
            await ws.send(["a\u00e9", "b", "c"])
            assert await asyncio.wait_for(ws.recv(), STEP) == "a\u00e9bc"
            # Fragmented from tether.
            await ws.send("cmd:fragments:3:xyz")
            assert await asyncio.wait_for(ws.recv(), STEP) == "xyzxyzxyz"
            pong_waiter = await ws.ping(b"py")
            await asyncio.wait_for(pong_waiter, STEP)
            await ws.send("cmd:ping:py")
            assert await asyncio.wait_for(ws.recv(), STEP) == "pong:py"
            await ws.close(4004, "python client")
        assert await log.wait_closes(1) == [(4004, "python client")]
        assert not log.errors

    async def test_close_from_server(self, tether_server: Any) -> None:
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import ConnectionClosedError

        port, _ = await tether_server()
        async with ws_connect(f"ws://{HOST}:{port}/") as ws:
            await ws.send("cmd:close:4005:from tether")
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), STEP)
            assert (ws.close_code, ws.close_reason) == (4005, "from tether")


# ============================================================================================
# headless Chromium (a real browser's WebSocket) <-> tether server
# ============================================================================================

BROWSER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tether interop</title>
<style>pre { white-space: pre-wrap; word-break: break-all; }</style></head><body>
<pre id="out">running</pre>
<script>
(async () => {
  const r = { steps: {} };
  const ws = new WebSocket(`ws://${location.host}/ws`, ["chat.v1"]);
  ws.binaryType = "arraybuffer";
  const inbox = [];
  let waiter = null;
  ws.onmessage = (e) => {
    if (waiter) { const w = waiter; waiter = null; w(e.data); } else { inbox.push(e.data); }
  };
  const next = () => inbox.length ? Promise.resolve(inbox.shift())
                                   : new Promise((resolve) => { waiter = resolve; });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("websocket error"));
  });
  r.extensions = ws.extensions;
  r.protocol = ws.protocol;
  const text = "h\\u00e9llo from chromium \\u2713";
  ws.send(text);
  r.steps.text = (await next()) === text;
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  ws.send(big);
  const got = new Uint8Array(await next());
  r.steps.big = got.length === big.length && got.every((v, i) => v === big[i]);
  ws.send("tether compresses repetitive text. ".repeat(8192));
  r.steps.compressible = (await next()).length === 35 * 8192;
  ws.send("cmd:fragments:4:ab");
  r.steps.fragments = (await next()) === "abababab";
  ws.send("cmd:info");
  r.info = JSON.parse(await next());
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
  });
  ws.close(4000, "bye from browser");
  r.close = await closed;
  window.result = r;
})().catch((e) => { window.result = { error: String(e) }; })
  .finally(() => {
    document.getElementById("out").textContent = JSON.stringify(window.result, null, 1);
  });
</script></body></html>
"""


class TestChromiumTetherServer:
    @pytest.mark.parametrize("compression", COMPRESSIONS)
    async def test_browser_websocket(
        self, node: Any, chromium: Any, tether_server: Any, compression: str | None, tmp_path: Any
    ) -> None:
        async def serve_page(request: Any) -> Any:
            # Plain HTTP on the same port goes to http_handler (process_request sees upgrades).
            if request.path == "/":
                headers = [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Cache-Control", "no-store"),
                ]
                return tether.Response(200, headers, BROWSER_PAGE.encode())
            return tether.Response(404, [("Content-Type", "text/plain")], b"not found\n")

        port, log = await tether_server(
            compression=compression,
            http_handler=serve_page,
            subprotocols=["chat.v1"],
            max_size=2 * MIB,
        )
        report = await node.abrowse(
            f"http://{HOST}:{port}/",
            wait="window.result",
            screenshot=tmp_path / "page.png",
            timeout=20,
        )
        assert report["ok"], report["_run"].describe()
        result = report["value"]
        assert "error" not in result, report
        assert result["steps"] == {
            "text": True,
            "big": True,
            "compressible": True,
            "fragments": True,
        }
        assert result["protocol"] == "chat.v1"
        # Chromium always offers permessage-deflate; tether accepts only when enabled.
        assert ("permessage-deflate" in result["extensions"]) is (compression == "deflate")
        assert ("permessage-deflate" in result["info"]["extensions"]) is (compression == "deflate")
        assert result["info"]["path"] == "/ws"
        assert result["info"]["headers"]["origin"] == f"http://{HOST}:{port}"
        assert result["close"]["code"] == 4000 and result["close"]["wasClean"], result
        assert await log.wait_closes(1) == [(4000, "bye from browser")]
        assert not report["pageErrors"], report
