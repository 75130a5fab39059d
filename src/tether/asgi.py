"""Mount the real-time hub in any ASGI application (Starlette, FastAPI) under uvicorn.

::

    from fastapi import FastAPI
    from tether.asgi import ASGIApp
    from tether.realtime import Hub

    api = FastAPI()
    hub = Hub()
    app = ASGIApp(hub, other_app=api)     # uvicorn module:app

Requests under the hub's path (``/socket.io/``) go to the engine, everything else to
``other_app``. Both transports work: HTTP long-polling through ASGI ``http`` and
WebSocket through ASGI ``websocket``. The outgoing queue of each WebSocket is bounded,
and the hub's bound on running handlers holds reading (the adapter stops pulling
``receive()``), as on tether's own server. With lifespan events (uvicorn's default) the
hub starts at startup and shuts down at shutdown, ``other_app``'s own lifespan included;
without them it starts on the first request.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .exceptions import ConnectionClosedError, ConnectionClosedOK
from .protocol.handshake import Headers, Request, Response

__all__ = ["ASGIApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def _request(scope: Scope, body: bytes = b"") -> Request:
    headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    # Mounted under a prefix (Starlette's Mount, FastAPI's app.mount): the path still
    # carries it (ASGI spec), root_path names it; the engine's path is below it.
    root = scope.get("root_path") or ""
    if root and target.startswith(root) and target[len(root) : len(root) + 1] in ("/", ""):
        target = target[len(root) :] or "/"
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    method = scope.get("method", "GET")
    client = scope.get("client")
    return Request(
        method,
        target,
        headers,
        body,
        scope.get("http_version", "1.1"),
        remote_address=tuple(client) if client else None,
    )


class _ASGIWebSocket:
    """An engine :class:`~tether.engine.transport.Transport` over ASGI messages.

    Outgoing messages wait in a bounded queue written by one task; incoming ones are
    pulled from ``receive()`` by another, which stops pulling while reading is held (the
    server's own buffer then fills and TCP pushes back on the client), as tether's
    server does.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, high_water: int) -> None:
        self.request: Request | None = _request(scope)
        self.remote_address = scope.get("client")
        self.extensions: str | None = None  # the ASGI server owns any compression
        self._receive = receive
        self._send = send
        self._out: collections.deque[str | bytes] = collections.deque()
        self._high = high_water
        self._wake = asyncio.Event()  # something to write, or closed
        self._below = asyncio.Event()  # the queue is under half the bound again
        self._below.set()
        self._flushed = asyncio.Event()  # the writer has written everything queued
        self._flushed.set()
        self._unheld = asyncio.Event()
        self._unheld.set()
        self._done = asyncio.Event()
        self._closed: ConnectionClosedOK | ConnectionClosedError | None = None
        self._on_message: Callable[[str | bytes], Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer = asyncio.ensure_future(self._write())

    @property
    def writable(self) -> bool:
        return len(self._out) < self._high

    def send_nowait(self, data: str | bytes, *, compress: bool | None = None) -> bool:
        if self._closed is not None:
            raise self._closed
        self._out.append(data)
        self._flushed.clear()
        self._wake.set()
        if len(self._out) >= self._high:
            self._below.clear()
        return self.writable

    async def send(self, data: str | bytes, *, compress: bool | None = None) -> None:
        self.send_nowait(data)
        await self.drain()

    async def drain(self) -> None:
        await self._below.wait()
        if self._closed is not None:
            raise self._closed

    async def _write(self) -> None:
        try:
            while self._closed is None:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    data = self._out.popleft()
                    if isinstance(data, str):
                        await self._send({"type": "websocket.send", "text": data})
                    else:
                        await self._send({"type": "websocket.send", "bytes": data})
                    if len(self._out) < self._high // 2:
                        self._below.set()
                self._flushed.set()
        except Exception:
            self._mark_closed(ConnectionClosedError(1006, "send failed"))
        finally:
            self._below.set()
            self._flushed.set()

    def _mark_closed(self, exc: ConnectionClosedOK | ConnectionClosedError) -> None:
        if self._closed is None:
            self._closed = exc
        self._wake.set()
        self._done.set()

    async def recv(self) -> str | bytes:
        if self._closed is not None:
            raise self._closed
        message = await self._receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            return text if text is not None else bytes(message.get("bytes") or b"")
        code = int(message.get("code", 1005))
        self._mark_closed(
            ConnectionClosedOK(code, "")
            if code in (1000, 1001, 1005)
            else ConnectionClosedError(code, "")
        )
        assert self._closed is not None
        raise self._closed

    @property
    def on_message(self) -> Callable[[str | bytes], Any] | None:
        return self._on_message

    @on_message.setter
    def on_message(self, callback: Callable[[str | bytes], Any] | None) -> None:
        self._on_message = callback
        if callback is not None and self._reader is None:
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while self._closed is None:
                await self._unheld.wait()
                message = await self.recv()
                callback = self._on_message
                if callback is not None:
                    callback(message)
        except (ConnectionClosedOK, ConnectionClosedError):
            pass
        except Exception as exc:  # the ASGI server failed under us
            self._mark_closed(ConnectionClosedError(1006, f"receive failed: {exc!r}"))

    def hold_reading(self, held: bool) -> None:
        if held:
            self._unheld.clear()
        else:
            self._unheld.set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is not None:
            return
        # Let queued messages go out first (bounded by the queue size).
        if not self._writer.done():
            await self._flushed.wait()
        if self._closed is not None:
            return
        self._mark_closed(ConnectionClosedOK(code, reason))
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:
            pass

    def _stop(self) -> None:
        self._mark_closed(ConnectionClosedOK(1000, ""))
        for task in (self._writer, self._reader):
            if task is not None:
                task.cancel()


class ASGIApp:
    """An ASGI application serving a :class:`tether.realtime.Hub`.

    Args:
        hub: the hub.
        other_app: the ASGI app for every other request (404 when None).
        max_queue: the outgoing message bound of each WebSocket.
    """

    def __init__(self, hub: Any, other_app: ASGI | None = None, *, max_queue: int = 1024) -> None:
        self.hub = hub
        self.engine = hub.engine
        self.other_app = other_app
        self.max_queue = max_queue
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if not self._started:
            # Without lifespan events (uvicorn --lifespan off), start on first use.
            self._started = True
            await self.hub.start()
        if kind in ("http", "websocket") and self.engine.in_path(_request(scope)):
            if kind == "http":
                await self._http(scope, receive, send)
            else:
                await self._websocket(scope, receive, send)
            return
        if self.other_app is not None:
            await self.other_app(scope, receive, send)
        elif kind == "http":
            await self._respond(send, Response.text(404, "not found"))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the hub at startup and shut it down at shutdown; with ``other_app``, its
        own lifespan still runs (the hub steps in as each event passes)."""

        async def hub_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._started = True
                await self.hub.start()
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
            return message

        if self.other_app is not None:
            await self.other_app(scope, hub_receive, send)
            return
        while True:
            message = await hub_receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.engine.max_payload
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._respond(send, Response(413, [], b"Payload Too Large"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        response = await self.engine.handle_http(_request(scope, b"".join(chunks)))
        await self._respond(send, response)

    async def _respond(self, send: Send, response: Response) -> None:
        headers = response.headers
        assert isinstance(headers, Headers)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if not any(k == b"content-length" for k, _ in raw):
            raw.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        await send({"type": "http.response.body", "body": response.body})

    async def _refuse_websocket(self, scope: Scope, send: Send, response: Response) -> None:
        """Refuse a WebSocket handshake with the engine's HTTP response (403, 429...) where
        the ASGI server supports denial responses, else with a 1008 close."""
        if "websocket.http.response" in scope.get("extensions", {}):
            headers = response.headers
            assert isinstance(headers, Headers)
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            raw.append((b"content-length", str(len(response.body)).encode()))
            await send(
                {"type": "websocket.http.response.start", "status": response.status, "headers": raw}
            )
            await send({"type": "websocket.http.response.body", "body": response.body})
            return
        await send({"type": "websocket.close", "code": 1008, "reason": "refused"})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        request = _request(scope)
        refused = self.engine.process_request(request)
        if refused is not None:
            await self._refuse_websocket(scope, send, refused)
            return
        await send({"type": "websocket.accept"})
        ws = _ASGIWebSocket(scope, receive, send, self.max_queue)
        try:
            await self.engine.handle_websocket(ws)
        finally:
            await ws.close()
            ws._stop()
