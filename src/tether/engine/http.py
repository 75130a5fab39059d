"""The HTTP side of the engine: error codes, CORS headers and plain responses."""

from __future__ import annotations

import json
from collections.abc import Sequence

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
    """Builds the engine's HTTP responses with the CORS headers its options call for.

    Args:
        cors_origins: allowed Origins (``"*"`` for any, a list, or None for no CORS).
        cors_credentials: send ``Access-Control-Allow-Credentials: true``.
    """

    def __init__(self, cors_origins: str | Sequence[str] | None, cors_credentials: bool) -> None:
        self.cors_origins = cors_origins
        self.cors_credentials = cors_credentials

    def cors(self, request: Request) -> list[tuple[str, str]]:
        """The CORS headers for ``request`` (none for a foreign or missing Origin)."""
        origin = request.headers.get("Origin")
        allowed = self.cors_origins
        if allowed is None or origin is None:
            return []
        if allowed != "*" and origin not in allowed:
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
