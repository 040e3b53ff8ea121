"""Store fixtures, parametrized over SQLite (a file in tmp_path) and PostgreSQL.

PostgreSQL: a fresh, uniquely named database is created on the server named by
``WRITERSROOM_TEST_POSTGRES_URL`` once per test session, migrated, emptied between
tests and dropped at the end. If the server cannot be reached the postgres params are
skipped, unless ``CI`` is set, in which case they fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from store import Base, make_engine, make_session_factory, upgrade
from tests.support.postgres import throwaway_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a migrated, throwaway PostgreSQL database for this test session."""
    with throwaway_database() as url:
        upgrade(url)
        yield url


def _empty_postgres(url: str) -> None:
    engine = make_engine(url)
    try:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of an empty database migrated to head, one per test."""
    if request.param == "sqlite":
        # A directory that does not exist yet: make_engine has to create it.
        url = f"sqlite:///{tmp_path / 'home' / 'writersroom.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session
