"""Engine.IO v4: sessions over HTTP long-polling and WebSocket, with the upgrade."""

from __future__ import annotations

from .server import EngineServer, Session, SessionHandler, SessionState

__all__ = ["EngineServer", "Session", "SessionHandler", "SessionState"]
