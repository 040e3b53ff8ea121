"""What the store's modules share: reading an enum value with a clear error, and an
insert that loses a unique-constraint race gracefully."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")


def choice(enum_cls: type[T], value: object, what: str) -> T:
    """``enum_cls(value)``, or a ValueError that lists the allowed values."""
    try:
        return enum_cls(value)  # type: ignore[call-arg]
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)  # type: ignore[attr-defined]
        raise ValueError(f"unknown {what} {value!r}; expected one of: {allowed}") from None


def insert_or_fetch(session: Session, obj: T, fetch: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert ``obj`` in a savepoint; if a unique constraint says another writer won the
    race, return the row they stored instead. Returns (row, created)."""
    try:
        with session.begin_nested():
            session.add(obj)
            session.flush()
    except IntegrityError:
        existing = fetch()
        if existing is None:
            raise
        return existing, False
    return obj, True
