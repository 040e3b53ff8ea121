"""Engines, sessions and schema migrations of the store.

SQLite (the embedded default) runs in WAL mode with foreign keys enforced, a busy
timeout, and real transactions: the sqlite3 driver's legacy mode neither begins a
transaction before a SELECT nor lets SAVEPOINT join the enclosing transaction, so
the driver is put in autocommit mode and SQLAlchemy emits ``BEGIN`` itself.

SQLite transactions begin ``IMMEDIATE`` by default: they take the write lock at once
(waiting up to the busy timeout for it) instead of at their first write. A deferred
transaction that reads and then writes (get-or-create, record feedback) fails with
"database is locked" as soon as another connection committed in between, whatever the
busy timeout; an immediate one simply waits its turn. The price: every session
transaction, read-only ones included, holds the lock until it ends, so keep sessions
short (never hold one open across a generation request). Pass
``sqlite_immediate=False`` for a long read-only reader such as a training export.

Migrations run programmatically (no alembic.ini)::

    from store import upgrade
    upgrade("sqlite:////var/lib/writersroom/writersroom.db")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: How long (ms) an SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000


def _normalise_url(url: str | URL) -> URL:
    parsed = make_url(url)
    # psycopg (3) is the driver we ship; a bare postgresql:// would ask for psycopg2.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_file_database(url: URL) -> bool:
    database = url.database or ""
    return database not in ("", ":memory:") and not database.startswith("file:")


def _configure_sqlite(engine: Engine, *, wal: bool, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
        # Let SQLAlchemy own the transaction boundaries (see module docstring).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def make_engine(url: str | URL, *, sqlite_immediate: bool = True, **kwargs: Any) -> Engine:
    """Create an engine for ``url``.

    SQLite: the database's directory is created; connections use WAL, foreign keys and
    a busy timeout, and transactions begin IMMEDIATE unless ``sqlite_immediate=False``.
    PostgreSQL URLs without a driver get psycopg (3). Extra keywords go to
    ``create_engine``.
    """
    parsed = _normalise_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "sqlite":
        file_db = _is_file_database(parsed)
        if file_db:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(
            engine, wal=file_db, begin="BEGIN IMMEDIATE" if sqlite_immediate else "BEGIN"
        )
        return engine
    return create_engine(parsed, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (handy across threads and replies)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _run_migration(url: str | URL, action: str, revision: str) -> None:
    config = alembic_config()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating the schema if empty)."""
    _run_migration(url, "upgrade", revision)


def downgrade(url: str | URL, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` drops the schema)."""
    _run_migration(url, "downgrade", revision)


def current_revision(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at, or ``None`` if it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
