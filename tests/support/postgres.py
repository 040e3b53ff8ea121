"""A throwaway PostgreSQL database on the server named by ``WRITERSROOM_TEST_POSTGRES_URL``.

Shared by the store tests and the scene-index catalog tests, so CI (which has a server
and sets ``CI``) runs both against PostgreSQL: an unreachable server fails the tests
there, and skips the PostgreSQL cases on a developer machine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("WRITERSROOM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@contextmanager
def throwaway_database(prefix: str = "writersroom_test") -> Iterator[str]:
    """URL of a fresh, uniquely named database, dropped on exit."""
    server = make_url(server_url())
    if server.drivername in ("postgresql", "postgres"):
        server = server.set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        message = (
            f"PostgreSQL at {server.render_as_string(hide_password=True)} is unreachable "
            f"(set WRITERSROOM_TEST_POSTGRES_URL): {str(exc.orig).splitlines()[0]}"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
