"""The HTTP long-polling transport of the Engine.IO client (engine.io-protocol README,
"HTTP long-polling").

Like a browser, a :class:`PollingTransport` keeps two keep-alive connections
(:class:`tether.asyncio.httpclient.HTTPConnection`): one for the long-polling ``GET``
requests and one for the ``POST`` requests, so a write never waits behind a poll. It turns
the HTTP client's errors into :class:`~tether.exceptions.EngineConnectionError`, with the
HTTP client's message.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence

from ..asyncio.httpclient import HTTPConnection, declared_length
from ..exceptions import EngineConnectionError, HTTPError
from ..protocol.handshake import Response
from .client_url import EngineURL
from .packets import Packet, decode_payload, encode_payload

__all__ = ["PollingTransport"]

# A POST is answered "ok" (or a short error message).
_POST_RESPONSE_SIZE = 65536


class PollingTransport:
    """The two HTTP connections of one polling session.

    Args:
        url: the server.
        ssl: TLS context for https.
        headers: extra headers for every request.
        max_body_size: the largest ``GET`` response body accepted.
        request_timeout: the bound on one ``POST``.
    """

    def __init__(
        self,
        url: EngineURL,
        *,
        ssl: ssl_module.SSLContext | None,
        headers: Sequence[tuple[str, str]],
        max_body_size: int,
        request_timeout: float,
    ) -> None:
        self.url = url
        self.request_timeout = request_timeout
        self._get = self._connection(ssl, headers, max_body_size)
        self._post = self._connection(ssl, headers, _POST_RESPONSE_SIZE)

    def _connection(
        self, ssl: ssl_module.SSLContext | None, headers: Sequence[tuple[str, str]], size: int
    ) -> HTTPConnection:
        url = self.url
        return HTTPConnection(
            url.host,
            url.port,
            secure=url.secure,
            ssl=ssl,
            host_header=url.host_header,
            headers=headers,
            max_body_size=size,
        )

    async def receive(self, timeout: float, sid: str | None = None) -> list[Packet]:
        """One ``GET``: the packets the server has for ``sid``; without ``sid``, the
        handshake (its ``OPEN`` packet first).

        Raises:
            EngineConnectionError: the request failed, the server answered other than 200
                (``status`` set), or the body was over ``max_body_size``.
            EnginePacketError: a malformed payload.
        """
        params = {"transport": "polling"} if sid is None else {"transport": "polling", "sid": sid}
        response = await _request(self._get, "GET", self.url.target(**params), timeout=timeout)
        if response.status != 200:
            if sid is None:
                raise EngineConnectionError(
                    f"handshake refused: HTTP {response.status} {response.body[:200]!r}",
                    response.status,
                )
            raise EngineConnectionError(f"poll refused: HTTP {response.status}", response.status)
        length = declared_length(response)
        if length is not None and length != len(response.body):
            # The HTTP client cut the body at max_body_size: packets are missing.
            raise EngineConnectionError(f"response body larger than the limit ({length} bytes)")
        return decode_payload(response.body)

    async def send(self, sid: str, packets: Sequence[Packet]) -> None:
        """One ``POST`` with ``packets`` (the caller keeps them within ``maxPayload``).

        Raises:
            EngineConnectionError: the request failed, or the server answered other than
                200 (``status`` set).
        """
        body = encode_payload(packets).encode("utf-8")
        target = self.url.target(transport="polling", sid=sid)
        response = await _request(self._post, "POST", target, body, timeout=self.request_timeout)
        if response.status != 200:
            raise EngineConnectionError(f"POST refused: HTTP {response.status}", response.status)

    def close(self) -> None:
        """Drop both connections (a request in flight fails)."""
        self._get.close()
        self._post.close()


async def _request(
    conn: HTTPConnection, method: str, target: str, body: bytes | None = None, *, timeout: float
) -> Response:
    try:
        return await conn.request(method, target, body, timeout=timeout)
    except (OSError, HTTPError) as exc:  # OSError: ConnectionError and TimeoutError
        raise EngineConnectionError(str(exc)) from exc
