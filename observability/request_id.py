"""One id per chat command that follows it from the bot to the backend and into every log line.

A context variable carries it: asyncio tasks and `asyncio.to_thread` copy the context,
so whatever a command awaits or runs in a worker thread logs the same id, and the chat
client sends it to the backend as the X-Request-ID header.
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

HEADER = "X-Request-ID"
_current: ContextVar[str | None] = ContextVar("writersroom_request_id", default=None)
# What we accept from a caller: short and printable, so a hostile header cannot forge log lines.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def current_request_id() -> str | None:
    return _current.get()


def request_id_headers() -> dict[str, str]:
    """The header that hands the current request id to another service (none outside a command)."""
    current = _current.get()
    return {HEADER: current} if current else {}


def accepted(candidate: str | None) -> str:
    """The caller's id when it is a sane one, else a fresh id."""
    if candidate and _ACCEPTABLE.fullmatch(candidate):
        return candidate
    return new_request_id()


@contextmanager
def request_scope(request_id: str | None = None) -> Iterator[str]:
    """Bind an id for the duration of a command; an id already bound (an outer scope) is kept."""
    outer = _current.get()
    if outer is not None and request_id is None:
        yield outer
        return
    token = _current.set(request_id or new_request_id())
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)
