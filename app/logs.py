"""Structured logs: one JSON object a line, carrying the request id of the request being served.

``configure_logging`` installs the JSON handler on the root logger only when nothing else has
configured logging (pytest's caplog, an application embedding ours), so it never clobbers
someone else's handlers; calling it again is a no-op.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any, TextIO

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served; set by the request middleware, read by the formatter."""

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")
# Fields a log call may pass through ``extra=`` that become top-level keys of the JSON line.
EXTRA_FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "client")


def request_id_from(header: str | None) -> str:
    """Return the caller's request id if sane (short, printable, no spaces), else a new one."""
    if header and _SANE_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, request context."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        created = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z"
        entry: dict[str, Any] = {
            "time": stamp,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for name in EXTRA_FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so a replaced stderr is followed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure_logging(level: str = "info") -> bool:
    """Send logs to stderr as JSON lines, unless logging is configured already.

    Args:
        level: The root level by name: debug, info, warning, error.

    Returns:
        True when the JSON handler was installed by this call.
    """
    root = logging.getLogger()
    if root.handlers:
        return False
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return True
