"""Named locks in the store, shared by every process and host that reaches it.

Used for "one training run at a time": the scheduler, an operator's ``writersroom
train`` and a second trainer pod may all start at once. A lock is a row in ``locks``;
its holder refreshes ``heartbeat_at`` while it works. A process that dies without
releasing (SIGKILL, OOM, a lost node) leaves a row whose heartbeat stops moving; once
it is older than the caller's ``stale_after_s`` anyone may take it over.

Why a row and not an advisory lock: SQLite has none, and a PostgreSQL advisory lock
dies with its connection, which the trainer would have to keep open for hours.

Safety: taking over is one conditional UPDATE ("... WHERE heartbeat_at < cutoff"), so
of two processes that both saw a stale lock only one changes the row (PostgreSQL
re-checks the condition on the row the winner wrote; SQLite serialises writers), and
the loser's UPDATE matches nothing. Times come from the callers' clocks: hosts sharing
a store must agree on the time to well within ``stale_after_s``.

Like the other store modules: the session first, keyword-only arguments after it; functions flush
but never commit. Commit right after acquiring, or the row stays invisible to others.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Lock, utcnow


def acquire_lock(session: Session, *, name: str, holder: str, stale_after_s: float) -> bool:
    """Take lock ``name`` for ``holder``; True when taken.

    Free: inserted. Held by ``holder`` already: refreshed (re-entrant). Held by another
    whose heartbeat is older than ``stale_after_s``: taken over. Otherwise False.
    """
    if stale_after_s <= 0:
        raise ValueError(f"stale_after_s must be positive, not {stale_after_s!r}")
    now = utcnow()
    try:
        with session.begin_nested():
            session.add(Lock(name=name, holder=holder, acquired_at=now, heartbeat_at=now))
            session.flush()
        return True
    except IntegrityError:
        pass  # someone holds it (or held it and died): try the conditional takeover
    cutoff = now - timedelta(seconds=stale_after_s)
    result = session.execute(
        update(Lock)
        .where(Lock.name == name, or_(Lock.heartbeat_at < cutoff, Lock.holder == holder))
        .values(holder=holder, acquired_at=now, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    # The identity map may hold the row as it was before the UPDATE.
    session.expire_all()
    return result.rowcount == 1


def refresh_lock(session: Session, *, name: str, holder: str) -> bool:
    """Move the heartbeat to now; False when ``holder`` no longer holds the lock
    (it went stale and someone took it over)."""
    result = session.execute(
        update(Lock)
        .where(Lock.name == name, Lock.holder == holder)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_lock(session: Session, *, name: str, holder: str) -> bool:
    """Give the lock up; False when ``holder`` did not hold it (nothing is changed)."""
    result = session.execute(
        delete(Lock).where(Lock.name == name, Lock.holder == holder).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def lock_state(session: Session, *, name: str) -> Lock | None:
    """The lock row as stored now (holder, acquired_at, heartbeat_at), or None when free."""
    return session.scalars(select(Lock).where(Lock.name == name).execution_options(populate_existing=True)).first()
