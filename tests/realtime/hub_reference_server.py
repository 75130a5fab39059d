"""A reference Socket.IO v5 server built on tether's :class:`~tether.realtime.Hub`.

The twin of ``tests/node/sio_reference_server.js`` (the official ``socket.io`` server):
the same options, namespaces, events and printed ``READY <port>`` line, so that the client
tests run unchanged against both.

Usage::

    python hub_reference_server.py --port P [--host 127.0.0.1]
        [--ping-interval MS] [--ping-timeout MS] [--max-payload BYTES]
        [--transports polling,websocket] [--refuse-websocket]
        [--recovery [--recovery-duration S]] [--reject-token TOKEN] [--redis URL --prefix P]

Prints "READY <port>" on stdout once listening (P may be 0). Exits on SIGTERM/SIGINT or
when stdin closes.

Options:
  --refuse-websocket   announce the websocket upgrade but answer every WebSocket request
                       with HTTP 403, like a proxy that does not pass upgrades
  --recovery           connection-state recovery on (broadcasts carry an offset); with
                       --redis it is shared by the cluster (a client recovers on any node)
  --recovery-duration S  its max_disconnection_duration (default 60)
  --reject-token T     the middleware of every namespace refuses auth.token == T with the
                       error "not authorized" (data: {"reason": "bad token"})
  --redis URL          join a cluster: a RedisBroker on URL (with --prefix P, default
                       "tether", and --node-id ID, default random); rooms and broadcasts
                       then span every node

The namespaces "/" and "/chat" answer the same events:
  echo(*args[, ack])           -> ack(*args), or without an ack emit("echo", *args)
  info(ack)                    -> ack({id, nsp, auth, transport, recovered, pid, data})
                                  (pid: this server's process id)
  set-data(key, value, ack)    -> socket.data[key] = value; ack("ok")
  auth-log(ack)                -> ack(list of {nsp, auth} seen by the middleware)
  ask(*args, ack)              -> emit_with_ack("question", *args) to the client; ack(answer)
  broadcast(event, *args[, ack]) -> namespace-wide emit(event, *args); ack()
  received(ack)                -> ack(list of the argument lists of "log" events received)
  log(*args[, ack])            -> appended to the received list; ack(count)
  flaky(id, ack)               -> acks only from the 2nd delivery of `id` on: ack(deliveries)
  close-engine()               -> closes the Engine.IO session (the client sees the
                                  transport close)
  server-disconnect()          -> socket.disconnect() (the client must not reconnect)
  upgrade-count(ack)           -> ack(number of completed transport upgrades)
  join(room, ack)              -> await socket.join(room) (cluster-wide); ack("ok")
  room-emit(room, event, *args[, ack]) -> hub.to(room).emit(event, *args); ack()

Where the Hub's handler API differs from socket.io's, this program bridges the gap with
public API only:

* A handler cannot see whether the client asked for an acknowledgement (socket.io passes
  the ack function as the last argument). :class:`ReferenceHub` plugs a subclass of the
  per-session :class:`~tether.realtime.connection.Connection` into the hub's internal
  seam ``Hub._connection_class``; it publishes, around the dispatch of each decoded
  packet, whether the packet has an ack id, in a context variable the handlers read.
* A handler cannot decline to acknowledge (the Hub acks with the return value, ``None``
  being an empty ack). ``flaky`` therefore waits, without answering, until the socket
  disconnects or the program stops.
* The engine has no "upgrade" event: a connect handler remembers each Engine.IO session
  and the transport it started on; an upgrade is a session that started on polling and
  now runs on WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from tether import Request, Response, run
from tether.broker import RedisBroker
from tether.engine import Session
from tether.realtime import ConnectionRefused, Hub, Recovery, Socket
from tether.realtime.connection import Connection
from tether.realtime.packets import Packet

#: Whether the packet being dispatched asked for an acknowledgement.
_ACK_REQUESTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ack_requested", default=False
)


def log(*parts: object) -> None:
    print("[hub_reference_server]", *parts, file=sys.stderr, flush=True)


class _AckAwareConnection(Connection):
    """Publishes, while a packet is dispatched, whether it asked for an acknowledgement."""

    def _dispatch(self, socket: Socket, packet: Packet) -> None:
        token = _ACK_REQUESTED.set(packet.id is not None)
        try:
            # The Hub dispatches synchronously: a sync handler runs in this context, an
            # async one in a task created here (which copies the context).
            super()._dispatch(socket, packet)
        finally:
            _ACK_REQUESTED.reset(token)


class ReferenceHub(Hub):
    """A Hub that tells its handlers whether the client wants an acknowledgement."""

    _connection_class = _AckAwareConnection


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ping-interval", type=float, default=25000, metavar="MS")
    parser.add_argument("--ping-timeout", type=float, default=20000, metavar="MS")
    parser.add_argument("--max-payload", type=int, default=1_000_000, metavar="BYTES")
    parser.add_argument("--transports", default="polling,websocket")
    parser.add_argument("--refuse-websocket", action="store_true")
    parser.add_argument("--recovery", action="store_true")
    parser.add_argument("--recovery-duration", type=float, default=60.0, metavar="S")
    parser.add_argument("--reject-token", default=None, metavar="TOKEN")
    parser.add_argument("--redis", default=None, metavar="URL")
    parser.add_argument("--prefix", default="tether")
    parser.add_argument("--node-id", default=None)
    return parser.parse_args(argv)


def build(opts: argparse.Namespace, stopping: asyncio.Event) -> ReferenceHub:
    broker = (
        RedisBroker(
            opts.redis,
            prefix=opts.prefix,
            node_id=opts.node_id,
            heartbeat_interval=0.3,
            ping_interval=0.3,
        )
        if opts.redis
        else None
    )
    hub = ReferenceHub(
        broker=broker,
        ping_interval=opts.ping_interval / 1000,
        ping_timeout=opts.ping_timeout / 1000,
        max_payload=opts.max_payload,
        transports=[t for t in opts.transports.split(",") if t],
        recovery=(
            Recovery(max_disconnection_duration=opts.recovery_duration, skip_middlewares=True)
            if opts.recovery
            else None
        ),
    )
    auth_seen: list[dict[str, Any]] = []
    received: list[list[Any]] = []
    deliveries: dict[Any, int] = {}
    # Engine.IO session id -> (session, transport it started on)
    sessions: dict[str, tuple[Session, str]] = {}

    for name in ("/", "/chat"):
        nsp = hub.of(name)

        def middleware(socket: Socket, auth: dict[str, Any], nsp_name: str = name) -> None:
            auth_seen.append({"nsp": nsp_name, "auth": auth})
            if opts.reject_token is not None and auth.get("token") == opts.reject_token:
                raise ConnectionRefused("not authorized", {"reason": "bad token"})

        nsp.use(middleware)

        @nsp.on("connect")
        def on_connect(socket: Socket, auth: dict[str, Any]) -> None:
            session = socket.session
            if session.sid not in sessions:
                sessions[session.sid] = (session, socket.transport)
            log(f"connection {socket.namespace.name} {socket.sid} recovered={socket.recovered}")

        @nsp.on("echo")
        async def echo(socket: Socket, *args: Any) -> Any:
            if _ACK_REQUESTED.get():
                return tuple(args)
            await socket.emit("echo", *args)
            return None

        @nsp.on("info")
        def info(socket: Socket) -> dict[str, Any]:
            return {
                "id": socket.sid,
                "nsp": socket.namespace.name,
                "auth": socket.handshake.auth,
                "transport": socket.transport,
                "recovered": socket.recovered,
                "pid": os.getpid(),
                "data": socket.data,
            }

        @nsp.on("set-data")
        def set_data(socket: Socket, key: str, value: Any) -> str:
            socket.data[key] = value
            return "ok"

        @nsp.on("auth-log")
        def auth_log(socket: Socket) -> list[dict[str, Any]]:
            return auth_seen

        @nsp.on("ask")
        async def ask(socket: Socket, *args: Any) -> Any:
            try:
                answer = await socket.emit_with_ack("question", *args, timeout=10.0)
            except Exception as exc:
                return {"error": str(exc)}
            # Like socket.io's emitWithAck: the first argument of the answer.
            return answer[0] if isinstance(answer, tuple) else answer

        @nsp.on("broadcast")
        async def broadcast(socket: Socket, event: str, *args: Any) -> None:
            await socket.namespace.emit(event, *args)

        @nsp.on("log")
        def log_event(socket: Socket, *args: Any) -> int:
            received.append(list(args))
            return len(received)

        @nsp.on("received")
        def received_events(socket: Socket) -> list[list[Any]]:
            return received

        @nsp.on("flaky")
        async def flaky(socket: Socket, ident: Any) -> int:
            n = deliveries[ident] = deliveries.get(ident, 0) + 1
            if n < 2:
                # No acknowledgement: hold the handler until the program stops (see the
                # module docstring); a cancelled handler sends nothing.
                await stopping.wait()
                raise asyncio.CancelledError
            return n

        @nsp.on("close-engine")
        def close_engine(socket: Socket) -> None:
            socket.session.close("forced close", drain=True)

        @nsp.on("server-disconnect")
        async def server_disconnect(socket: Socket) -> None:
            await socket.disconnect()

        @nsp.on("join")
        async def join(socket: Socket, room: str) -> str:
            await socket.join(room)
            return "ok"

        @nsp.on("room-emit")
        async def room_emit(socket: Socket, room: str, event: str, *args: Any) -> None:
            await socket.namespace.to(room).emit(event, *args)

        @nsp.on("upgrade-count")
        def upgrade_count(socket: Socket) -> int:
            return sum(
                1
                for session, first in sessions.values()
                if first == "polling" and session.transport == "websocket"
            )

    return hub


def _stdin_closed(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    def wait_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_eof, daemon=True).start()


async def main(argv: Sequence[str]) -> int:
    opts = parse_args(argv)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _stdin_closed(loop, stop)
    hub = build(opts, stop)
    refuse: Callable[[Request], Response | None] | None = None
    if opts.refuse_websocket:

        def refuse(request: Request) -> Response | None:
            # Replaces the engine's own check of WebSocket requests: like a proxy that
            # does not pass upgrades, every WebSocket request gets 403 while the polling
            # handshake still announces "websocket".
            return Response(403, [("Connection", "close")])

    # Leaving the block shuts the hub down: clients, server and broker (bounded).
    async with hub.serve(opts.host, opts.port, process_request=refuse, close_timeout=2.0) as server:
        print(f"READY {server.port}", flush=True)
        await stop.wait()
    await hub.broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(run(main(sys.argv[1:])))
