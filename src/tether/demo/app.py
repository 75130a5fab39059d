"""The demo chat: rooms, nicknames, acknowledged messages, presence and typing.

Everything runs in one process on one port (the hub's in-memory broker):

- ``GET /`` serves ``static/index.html`` (self-contained: no CDN, no build step);
- ``GET /ticker`` serves the live dashboard (:mod:`tether.demo.ticker`: prices pushed at a
  high rate with the coalesce slow-consumer policy);
- ``GET /socket.io.min.js`` serves the official client's browser bundle, found in
  ``tests/node/node_modules/socket.io-client/dist/`` above this file or given explicitly;
- ``/socket.io/`` is the :class:`~tether.realtime.Hub`.

Connection-state recovery stays off: after a reconnection the page joins its room again,
which keeps the presence counts exact without replaying anything.

Client events (the page's side of the protocol):

- ``join {room, nick}`` -> ack ``{room, nick, count}`` or ``{error}``; the room gets a
  ``system`` line and a ``presence`` update. A socket is in one room at a time.
- ``message {text}`` -> broadcast ``message {id, nick, text, ts}`` to the others in the
  room, then the ack ``{status: "delivered", id}`` to the sender.
- ``typing bool`` -> a volatile ``typing {nick, typing}`` to the others in the room
  (dropped for whoever cannot take it right now: it is stale a second later anyway).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..asyncio.server import Server
from ..protocol.handshake import Request, Response
from ..realtime import Hub, Socket
from .ticker import Ticker

__all__ = ["ChatRoom", "create_app", "find_client_js", "serve_demo"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
CLIENT_JS_RELATIVE = Path("tests/node/node_modules/socket.io-client/dist/socket.io.min.js")

MAX_NICK = 24
MAX_ROOM = 32
MAX_TEXT = 500
_ROOM_RE = re.compile(r"^[\w][\w .-]*$")


def find_client_js(start: Path | None = None) -> Path | None:
    """The official client bundle (``socket.io.min.js`` of npm's ``socket.io-client``):
    ``$TETHER_CLIENT_JS`` if set, else ``node_modules/socket.io-client/dist/`` in the
    current directory (after ``npm install socket.io-client``), else
    ``tests/node/node_modules/...`` in the nearest directory above ``start`` (this module
    by default, for a checkout); None if none exists."""
    env = os.environ.get("TETHER_CLIENT_JS")
    if env:
        return Path(env) if Path(env).is_file() else None
    local = Path.cwd() / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    if local.is_file():
        return local
    here = (start or Path(__file__)).resolve()
    for directory in (here, *here.parents):
        candidate = directory / CLIENT_JS_RELATIVE
        if candidate.is_file():
            return candidate
    return None


def _clean_nick(value: Any, sid: str) -> str:
    nick = " ".join(str(value or "").split())[:MAX_NICK]
    return nick or f"guest-{sid[:4]}"


def _clean_room(value: Any) -> str | None:
    room = " ".join(str(value or "").split())[:MAX_ROOM]
    return room if _ROOM_RE.match(room) else None


@dataclass
class ChatRoom:
    """Who is in a room (socket ids), for the presence count."""

    name: str
    members: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.members)


class _Chat:
    """The chat's state and handlers, bound to one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.rooms: dict[str, ChatRoom] = {}
        self._ids = itertools.count(1)

    def _room_key(self, room: str) -> str:
        # Socket.IO room names share one space with socket ids: prefix ours.
        return "room:" + room

    async def _announce(self, room: str, text: str) -> None:
        chat_room = self.rooms.get(room)
        count = chat_room.count if chat_room is not None else 0
        key = self._room_key(room)
        await self.hub.to(key).emit("presence", {"room": room, "count": count})
        await self.hub.to(key).emit("system", {"text": text, "ts": time.time()})

    async def leave(self, socket: Socket) -> None:
        room = socket.data.pop("room", None)
        if not isinstance(room, str):
            return
        socket.leave(self._room_key(room))
        chat_room = self.rooms.get(room)
        if chat_room is not None:
            chat_room.members.discard(socket.sid)
            if not chat_room.members:
                del self.rooms[room]
        await self._announce(room, f"{socket.data.get('nick', 'someone')} left")

    async def join(self, socket: Socket, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            return {"error": "join needs {room, nick}"}
        room = _clean_room(payload.get("room"))
        if room is None:
            return {"error": "room names use letters, digits, spaces, '.', '-' and '_'"}
        nick = _clean_nick(payload.get("nick"), socket.sid)
        if socket.data.get("room") == room:
            socket.data["nick"] = nick
            return {"room": room, "nick": nick, "count": self.rooms[room].count}
        await self.leave(socket)
        socket.data["room"] = room
        socket.data["nick"] = nick
        socket.join(self._room_key(room))
        chat_room = self.rooms.setdefault(room, ChatRoom(room))
        chat_room.members.add(socket.sid)
        await self._announce(room, f"{nick} joined")
        return {"room": room, "nick": nick, "count": chat_room.count}

    async def message(self, socket: Socket, payload: Any) -> dict[str, Any]:
        room = socket.data.get("room")
        if not isinstance(room, str):
            return {"error": "join a room first"}
        text = payload.get("text") if isinstance(payload, dict) else payload
        if not isinstance(text, str) or not text.strip():
            return {"error": "empty message"}
        message = {
            "id": next(self._ids),
            "nick": socket.data.get("nick", "someone"),
            "text": text[:MAX_TEXT],
            "ts": time.time(),
        }
        await socket.to(self._room_key(room)).emit("message", message)
        return {"status": "delivered", "id": message["id"]}

    async def typing(self, socket: Socket, value: Any) -> None:
        room = socket.data.get("room")
        if isinstance(room, str):
            await socket.to(self._room_key(room)).volatile.emit(
                "typing", {"nick": socket.data.get("nick"), "typing": bool(value)}
            )


def _static_handler(
    client_js: Path | None,
) -> Callable[[Request], Awaitable[Response]]:
    cache: dict[str, bytes] = {}

    def read(name: str, path: Path) -> bytes:
        data = cache.get(name)
        if data is None:
            data = cache[name] = path.read_bytes()
        return data

    async def handle(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response.text(405, "method not allowed", [("Allow", "GET, HEAD")])
        path = request.path
        if path in ("/", "/index.html"):
            body = read("index", STATIC_DIR / "index.html")
            return _asset(request, body, "text/html; charset=utf-8")
        if path in ("/ticker", "/ticker.html"):
            body = read("ticker", STATIC_DIR / "ticker.html")
            return _asset(request, body, "text/html; charset=utf-8")
        if path == "/socket.io.min.js":
            bundle = client_js if client_js is not None else find_client_js()
            if bundle is None or not bundle.is_file():
                where = str(client_js) if client_js is not None else str(CLIENT_JS_RELATIVE)
                return Response.text(
                    500,
                    f"the socket.io client bundle is missing ({where}): run"
                    " `npm install socket.io-client` here, or start the demo with"
                    " --client-js PATH (or set TETHER_CLIENT_JS)",
                )
            return _asset(request, read("client", bundle), "text/javascript; charset=utf-8")
        return Response.text(404, "not found")

    return handle


def _asset(request: Request, body: bytes, content_type: str) -> Response:
    headers = [
        ("Content-Type", content_type),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if request.method == "HEAD":
        return Response(200, [*headers, ("Content-Length", str(len(body)))])
    return Response(200, headers, body)


def create_app(*, client_js: Path | None = None, **hub_options: Any) -> Hub:
    """Build the chat hub; its HTTP fallback serves the page and the client bundle.

    Args:
        client_js: the ``socket.io.min.js`` to serve (found with :func:`find_client_js`
            when omitted; a missing file answers 500 with a hint).
        hub_options: passed to :class:`~tether.realtime.Hub` (``ping_interval``...).
    """
    hub = Hub(fallback=_static_handler(client_js), **hub_options)
    chat = _Chat(hub)
    Ticker(hub)

    @hub.on("join")
    async def on_join(socket: Socket, payload: Any = None) -> dict[str, Any]:
        return await chat.join(socket, payload)

    @hub.on("message")
    async def on_message(socket: Socket, payload: Any = None) -> dict[str, Any]:
        return await chat.message(socket, payload)

    @hub.on("typing")
    async def on_typing(socket: Socket, value: Any = False) -> None:
        await chat.typing(socket, value)

    @hub.on_disconnect()
    async def on_disconnect(socket: Socket, reason: str) -> None:
        await chat.leave(socket)

    return hub


async def serve_demo(
    host: str = "127.0.0.1", port: int = 8765, *, client_js: Path | None = None
) -> tuple[Hub, Server]:
    """Start the demo on ``host:port``; returns the hub and the running server."""
    hub = create_app(client_js=client_js)
    server = await hub.serve(host, port)
    return hub, server
