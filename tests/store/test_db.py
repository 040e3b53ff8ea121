"""Sessions and constraints of the store (store/db.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import session_scope
from store.models import FeedbackEvent, FeedbackKind, User
from tests.store.builders import make_user


def test_session_scope_commits_or_rolls_back(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError):
        with session_scope(session_factory) as session:
            make_user(session, "U1")
            raise RuntimeError("boom")
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
        make_user(session, "U1")
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(FeedbackEvent(generation_id=123456, user_id=654321, kind=FeedbackKind.APPROVE))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()

