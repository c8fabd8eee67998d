"""Alembic environment: the URL comes from batchline's own settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from batchline.database import prepare_sqlite_path
from batchline.models import metadata
from batchline.settings import Settings

config = context.config
url = config.attributes.get("database_url") or Settings.from_env().database_url
prepare_sqlite_path(url)


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run(conn)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
