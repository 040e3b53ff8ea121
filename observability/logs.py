"""Process-wide logging: text for people, or JSON lines for log collectors; both carry the request id.

Libraries speak at WARNING and above unless the level is DEBUG: their INFO lines (alembic's
migration context, faiss's loader, uvicorn's access lines, httpx's requests...) tell a writer
nothing. They are dropped by our handler's filter rather than by setting the libraries' logger
levels, because some libraries set their own level when imported (bm25s pins DEBUG, uvicorn sets
its loggers to its log_level) and a filter holds whatever they do, without changing what other
handlers (pytest's caplog, an operator's own) receive.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from observability.request_id import current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message", "request_id", "process"]
# Third-party loggers (and their children) shown only from WARNING up unless the level is DEBUG.
QUIET_LIBRARIES = (
    "alembic", "faiss", "sentence_transformers", "transformers", "torch", "huggingface_hub", "filelock",
    "uvicorn", "fastapi", "httpx", "httpcore", "urllib3", "aiohttp", "bm25s", "numexpr", "peft", "accelerate",
    "apscheduler", "matplotlib", "PIL", "multipart", "python_multipart", "slack_bolt", "slack_sdk", "discord",
)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id ("-" outside a command)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or getattr(record, "request_id", None) or "-"
        return True


class QuietLibraries(logging.Filter):
    """Drops records below WARNING from the QUIET_LIBRARIES loggers."""

    def __init__(self, names: tuple[str, ...] = QUIET_LIBRARIES) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        return not any(name == quiet or name.startswith(quiet + ".") for quiet in self.names)


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                             timestamp=False)
    return logging.Formatter(TEXT_FORMAT)


def _is_debug(level: str | int) -> bool:
    return level <= logging.DEBUG if isinstance(level, int) else str(level).upper() == "DEBUG"


def configure_logging(level: str | int = "INFO", fmt: str = "text", *, stream: IO[str] | None = None,
                      path: str | Path | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes `fmt` lines to `stream` (stderr),
    or, given `path`, appends them to that file (its folder is created).

    Idempotent: calling it again (each CLI command does) swaps the handler rather than adding one.
    Below DEBUG, the libraries in QUIET_LIBRARIES only get their warnings and errors through.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_writersroom", False)]:
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler._writersroom = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    if not _is_debug(level):
        handler.addFilter(QuietLibraries())
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
