"""Where an Engine.IO server lives, seen from the client: :class:`EngineURL` and
:func:`parse_url`, shared by both transports (the polling requests' target and the
WebSocket URI)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from ..asyncio.httpclient import format_host
from .packets import PROTOCOL_VERSION

__all__ = ["EngineURL", "parse_url"]


@dataclass(frozen=True, slots=True)
class EngineURL:
    """Where the Engine.IO server lives.

    Attributes:
        secure: https/wss.
        host: the host name or address.
        port: the TCP port.
        path: the Engine.IO path, with a trailing slash (``/socket.io/``).
        query: extra query parameters from the URL, kept on every request.
    """

    secure: bool
    host: str
    port: int
    path: str
    query: tuple[tuple[str, str], ...]

    @property
    def host_header(self) -> str:
        """The ``Host`` header value."""
        return format_host(self.host, self.port, secure=self.secure)

    def target(self, **params: str) -> str:
        """The request target: path and query (``EIO=4`` first, then ``params``)."""
        query = [("EIO", str(PROTOCOL_VERSION)), *params.items(), *self.query]
        return self.path + "?" + urllib.parse.urlencode(query)

    def websocket_uri(self, **params: str) -> str:
        """The ``ws://`` or ``wss://`` URI of the WebSocket transport."""
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.host_header}{self.target(**params)}"


def parse_url(url: str, path: str = "/engine.io/") -> EngineURL:
    """Parse a server URL (``http``, ``https``, ``ws`` or ``wss``).

    The URL's own query parameters are sent with every request (socket.io-client does the
    same). Its path, if any other than ``/``, is ignored: ``path`` names the endpoint.

    Raises:
        ValueError: another scheme, or no host.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"not an http(s):// or ws(s):// URL: {url!r}")
    if not parsed.hostname:
        raise ValueError(f"no host in {url!r}")
    secure = parsed.scheme in ("https", "wss")
    port = parsed.port or (443 if secure else 80)
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    query = tuple(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    return EngineURL(secure, parsed.hostname, port, path, query)
