"""Engines, sessions and migrations.

Engines are made by callers after the prefork pool forks (see
`batchline.runtime`), never at import time: a pooled connection shared across a
fork corrupts both processes' protocol state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from batchline.settings import Settings, redact

# Execution option for a connection that only reads (see _sqlite_engine).
READ_ONLY = "batchline_read_only"
# Found through the package, not beside this file: the repository's migrations/
# folder is mapped into the `batchline.migrations` namespace. Looked up as a
# resource, not imported: its env.py imports this module.
MIGRATIONS_DIR = Path(str(files("batchline.migrations") / "__init__.py")).resolve().parent


def prepare_sqlite_path(url: str) -> None:
    """Create the directory of a SQLite file database, so a fresh run just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    prepare_sqlite_path(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # SQLite has no SKIP LOCKED; taking the write lock at BEGIN makes two
        # claimers queue up instead of both reading the same queued rows.
        # Long reads (streaming a batch body) opt out, so they block no writer.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def session_scope(settings: Settings, write: bool = False) -> Iterator[Session]:
    """A session on a short-lived engine, for commands: committed when `write`, and
    every connection closed after."""
    engine = make_engine(settings.database_url)
    # Dispose the base engine, not an options view of it: that closes the pool.
    bound = engine if write else engine.execution_options(**{READ_ONLY: True})
    try:
        factory = make_session_factory(bound)
        with factory.begin() if write else factory() as session:
            yield session
    finally:
        engine.dispose()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_and_head(engine: Engine) -> tuple[str | None, str | None]:
    """The database's revision and the code's head, to tell if migrations are due."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def database_problem(settings: Settings) -> str | None:
    """What is wrong with the configured database, as one line saying what to do;
    None when it answers and is at the migrations' head."""
    where = f"the database at {redact(settings.database_url)}"
    engine = make_engine(settings.database_url)
    try:
        current, head = current_and_head(engine)
    except SQLAlchemyError as exc:
        return (
            f"{where} (BATCHLINE_DATABASE_URL) does not answer ({first_line(exc)}): "
            "start it or fix BATCHLINE_DATABASE_URL"
        )
    finally:
        engine.dispose()
    if current is None:
        return f"{where} has no batchline tables yet: run `batchline db upgrade`"
    if current != head:
        return f"{where} is at migration {current}, not {head}: run `batchline db upgrade`"
    return None


def first_line(exc: BaseException) -> str:
    """An error's first line, from the driver's own error when SQLAlchemy wraps one."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
