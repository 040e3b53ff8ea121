"""Alembic environment of the store.

Run through ``store.db.upgrade``/``downgrade``, which hand over an open connection
in ``config.attributes["connection"]``. Offline (``--sql``) mode needs
``sqlalchemy.url`` set on the config.
"""

from __future__ import annotations

from alembic import context

from store.db import make_engine
from store.models import Base

config = context.config
target_metadata = Base.metadata


def _include_name(name, type_, parent_names) -> bool:  # type: ignore[no-untyped-def]
    """These migrations cover the store's own tables only. The scene index catalog
    (``scene_index_*``, created by retrieval.catalog, not by Alembic) may share this
    database; autogenerate must not offer to drop it."""
    return not (type_ == "table" and (name or "").startswith("scene_index_"))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        include_name=_include_name,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set config.attributes['connection'] or sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
