"""The HTTP side of the engine: error codes, CORS headers and plain responses."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

from ..exceptions import InvalidOption
from ..protocol.handshake import Request, Response

__all__: list[str] = []

# Engine.IO error codes (engine.io-protocol README, "Errors").
UNKNOWN_TRANSPORT = 0
UNKNOWN_SID = 1
BAD_HANDSHAKE_METHOD = 2
BAD_REQUEST = 3
FORBIDDEN = 4
UNSUPPORTED_PROTOCOL_VERSION = 5
MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


class HTTPResponses:
    """Builds the engine's HTTP responses with the CORS headers its options call for, and
    checks the Origin of requests against the allow-list.

    Args:
        cors_origins: allowed Origins (``"*"`` for any, a list, or None for no CORS).
        cors_credentials: send ``Access-Control-Allow-Credentials: true``.
        check_origin: refuse requests whose ``Origin`` is neither in ``cors_origins`` (when
            it is a list) nor the server's own (the ``Host`` of the request).

    Raises:
        InvalidOption: ``cors_origins="*"`` with ``cors_credentials``: a wildcard that
            lets any site send the user's cookies is never what is meant (browsers refuse
            ``*`` with credentials; reflecting every Origin instead would open the door).
    """

    def __init__(
        self,
        cors_origins: str | Sequence[str] | None,
        cors_credentials: bool,
        check_origin: bool = True,
    ) -> None:
        if isinstance(cors_origins, str) and cors_origins != "*":
            cors_origins = [cors_origins]
        if cors_origins == "*" and cors_credentials:
            raise InvalidOption(
                'cors_origins="*" cannot be combined with cors_credentials=True:'
                " list the origins that may send credentials"
            )
        self.cors_origins = cors_origins
        self.cors_credentials = cors_credentials
        self.allowed_origins: frozenset[str] | None = None
        if check_origin and cors_origins is not None and cors_origins != "*":
            self.allowed_origins = frozenset(_normal(o) for o in cors_origins)

    def origin_allowed(self, request: Request) -> bool:
        """Whether ``request`` may proceed: no allow-list, no ``Origin`` (not a browser),
        an allowed Origin, or the server's own (same-origin pages)."""
        allowed = self.allowed_origins
        if allowed is None:
            return True
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = _normal(origin)
        if origin in allowed:
            return True
        host = request.headers.get("Host")
        return host is not None and urllib.parse.urlsplit(origin).netloc == host.lower()

    def cors(self, request: Request) -> list[tuple[str, str]]:
        """The CORS headers for ``request`` (none for a foreign or missing Origin)."""
        origin = request.headers.get("Origin")
        allowed = self.cors_origins
        if allowed is None or origin is None:
            return []
        if allowed != "*" and origin not in allowed and _normal(origin) not in allowed:
            return []
        headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if self.cors_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def error(
        self, request: Request, code: int, status: int = 400, message: str | None = None
    ) -> Response:
        """An Engine.IO error: ``{"code": ..., "message": ...}``."""
        text = MESSAGES[code] if message is None else message
        body = json.dumps({"code": code, "message": text}, separators=(",", ":"))
        return Response(
            status, [("Content-Type", "application/json"), *self.cors(request)], body.encode()
        )

    def ok(
        self, request: Request, payload: str, content_type: str = "text/plain; charset=UTF-8"
    ) -> Response:
        """A 200 response carrying ``payload``."""
        return Response(
            200, [("Content-Type", content_type), *self.cors(request)], payload.encode()
        )


def _normal(origin: str) -> str:
    """An Origin compared case-insensitively and without a trailing slash."""
    return origin.strip().rstrip("/").lower()
