"""The store fixtures of tests/store (SQLite and PostgreSQL), for training's store readers."""

from tests.store.conftest import db_url, engine, postgres_url, session, session_factory  # noqa: F401
