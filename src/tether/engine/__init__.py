"""Engine.IO v4: sessions over HTTP long-polling and WebSocket, with the upgrade."""

from __future__ import annotations

from .server import EngineServer
from .session import Session, SessionHandler, SessionState
from .transport import FrameWriter, PreparedMessage, Transport

__all__ = [
    "EngineServer",
    "FrameWriter",
    "PreparedMessage",
    "Session",
    "SessionHandler",
    "SessionState",
    "Transport",
]
