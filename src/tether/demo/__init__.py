"""A small chat served by tether on one port: the page, the Socket.IO client, the hub.

Run it with ``tether demo`` (or ``make run``) and open the printed URL in two windows.
"""

from __future__ import annotations

from .app import ChatRoom, create_app, find_client_js, serve_demo

__all__ = ["ChatRoom", "create_app", "find_client_js", "serve_demo"]
