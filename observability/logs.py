"""Process-wide logging: text for people, or JSON lines for log collectors; both carry the request id."""

from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from observability.request_id import current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message", "request_id", "process"]


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id ("-" outside a command)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or getattr(record, "request_id", None) or "-"
        return True


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                             timestamp=False)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str = "INFO", fmt: str = "text", *, stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes `fmt` lines to `stream` (stderr).

    Idempotent: calling it again (each CLI command does) swaps the handler rather than adding one.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_writersroom", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._writersroom = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
