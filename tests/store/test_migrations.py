"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from store import Base, current_revision, downgrade, head_revision, make_engine, upgrade

TABLES = {"rooms", "users", "generations", "feedback_events", "training_runs", "locks"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_schema_at_head(db_url: str) -> None:
    assert _tables(db_url) == TABLES
    assert current_revision(db_url) == head_revision() == "0002"


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    try:
        downgrade(db_url, "base")
        assert current_revision(db_url) is None
        assert _tables(db_url) == set()
    finally:
        upgrade(db_url)  # the PostgreSQL database is shared by the whole session
    assert current_revision(db_url) == head_revision()
    assert _tables(db_url) == TABLES


def test_downgrade_to_0001_drops_only_the_locks(db_url: str) -> None:
    try:
        downgrade(db_url, "0001")
        assert current_revision(db_url) == "0001"
        assert _tables(db_url) == TABLES - {"locks"}
    finally:
        upgrade(db_url)
    assert _tables(db_url) == TABLES


def test_fresh_database_has_no_revision(tmp_path) -> None:
    assert current_revision(f"sqlite:///{tmp_path / 'empty.db'}") is None


def test_models_match_migration(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_vote_index_is_partial(engine: Engine) -> None:
    """Autogenerate ignores index WHERE clauses, so check that the database has one."""
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("feedback_events")}
    vote = indexes["uq_feedback_events_vote"]
    assert vote["unique"]
    assert vote["column_names"] == ["generation_id", "user_id", "kind"]
    where = vote["dialect_options"][f"{engine.dialect.name}_where"]
    assert "approve" in str(where) and "reject" in str(where)
    assert "edit" not in str(where)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    path = tmp_path / "writersroom.db"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    finally:
        engine.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_make_engine_creates_the_sqlite_directory(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert path.exists()
