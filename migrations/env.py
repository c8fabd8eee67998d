"""Alembic environment: the URL comes from batchline's own settings."""

from __future__ import annotations

from typing import Any

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


def _for_dialect(name: str) -> Any:
    """Autogenerate's filter: a model index made only on another backend
    (`Index(...).ddl_if(dialect=...)`, e.g. PostgreSQL's GIN on tags) is not
    expected here. Alembic does not read ddl_if itself."""

    def include(obj: Any, _name: str | None, type_: str, reflected: bool, _other: Any) -> bool:
        only = getattr(obj, "_ddl_if", None)
        wanted = getattr(only, "dialect", None)
        if type_ != "index" or reflected or wanted is None:
            return True
        return bool(name == wanted or (isinstance(wanted, tuple | list) and name in wanted))

    return include


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
        include_object=_for_dialect(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
