"""The server the official Engine.IO and Socket.IO protocol test suites expect.

``/engine.io/`` echoes every message; ``/socket.io/`` serves the namespaces ``/`` and
``/custom`` with the reference settings (pingInterval 300 ms, pingTimeout 200 ms,
maxPayload 1000000, connectTimeout 1000 ms). See compliance/README.md.

    python examples/protocol_suite_server.py --port 3000
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import tether
from tether.engine import EngineServer, Session
from tether.protocol.handshake import Request, Response


class Echo:
    """Engine.IO session handler that sends every message back."""

    def on_open(self, session: Session) -> None:
        pass

    def on_message(self, session: Session, data: str | bytes) -> None:
        session.send(data)

    def on_close(self, session: Session, reason: str) -> None:
        pass


def build(port: int) -> tuple[EngineServer, object]:
    engine = EngineServer(
        Echo(), path="/engine.io/", ping_interval=0.3, ping_timeout=0.2, max_payload=1_000_000
    )
    hub = None
    try:
        from tether.realtime import Hub
    except ImportError:  # the realtime layer is optional here
        pass
    else:
        hub = Hub(
            path="/socket.io/",
            ping_interval=0.3,
            ping_timeout=0.2,
            max_payload=1_000_000,
            connect_timeout=1.0,
        )

        @hub.on("message")
        async def echo(socket: object, *args: object) -> None:
            await socket.emit("message-back", *args)  # type: ignore[attr-defined]

        @hub.on("message-with-ack")
        async def echo_ack(socket: object, *args: object) -> object:
            return tuple(args)

        custom = hub.of("/custom")

        @custom.on("message")
        async def echo_custom(socket: object, *args: object) -> None:
            await socket.emit("message-back", *args)  # type: ignore[attr-defined]

        @hub.on_connect()
        async def connected(socket: object, auth: object) -> None:
            await socket.emit("auth", auth)  # type: ignore[attr-defined]

        @custom.on_connect()
        async def connected_custom(socket: object, auth: object) -> None:
            await socket.emit("auth", auth)  # type: ignore[attr-defined]

    return engine, hub


async def main(host: str, port: int) -> None:
    engine, hub = build(port)
    sio_engine = hub.engine if hub is not None else None  # type: ignore[attr-defined]

    async def http_handler(request: Request) -> Response:
        if sio_engine is not None and request.path.startswith("/socket.io"):
            return await sio_engine.handle_http(request)
        return await engine.handle_http(request)

    def process_request(request: Request) -> Response | None:
        if sio_engine is not None and request.path.startswith("/socket.io"):
            return sio_engine.process_request(request)
        return engine.process_request(request)

    async def handler(ws: tether.WebSocket) -> None:
        assert ws.request is not None
        if sio_engine is not None and ws.request.path.startswith("/socket.io"):
            await sio_engine.handle_websocket(ws)
        else:
            await engine.handle_websocket(ws)

    options = engine.serve_options()
    options["http_handler"] = http_handler
    options["process_request"] = process_request
    async with tether.serve(handler, host, port, **options) as server:
        print(f"protocol suite server on http://{host}:{server.port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        tether.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
