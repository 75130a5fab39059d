"""Logging for the command line and for embedders: a level, plain text or JSON lines.

tether's loggers are ``tether.*`` (``tether.server``, ``tether.engine``,
``tether.realtime``, ``tether.broker``...). At INFO they say who connected and left
(namespace, sid, session, transport, client address, reason) and which handshakes were
refused and why; tokens, cookies and query strings are never in them.

    tether.logs.configure("info", "json")     # one JSON object per line on stderr
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Literal

__all__ = ["LEVELS", "JSONFormatter", "configure"]

LEVELS = ("debug", "info", "warning", "error")
Format = Literal["text", "json"]


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message`` (and
    ``exc`` with the traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "info", fmt: Format = "text") -> None:
    """Send tether's logs (and the root logger's) to stderr at ``level``.

    Raises:
        ValueError: an unknown level or format.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {LEVELS}")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; use text or json")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
