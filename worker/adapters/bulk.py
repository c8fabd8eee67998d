"""Inserting many rows at once.

On PostgreSQL rows go in by COPY: straight into the table when the caller
knows they are new, else into a temporary staging table and on with one
INSERT ... SELECT ... ON CONFLICT DO NOTHING. A multi-row INSERT with bound
parameters costs far more there: psycopg parses the whole query text on the
client, and that query grows with every row (see bench/README.md for the
measurements). Elsewhere (SQLite), one executemany in the open transaction is
already the fast path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

# COPY runs on the raw psycopg cursor, so its errors arrive unwrapped by SQLAlchemy.
UNIQUE_VIOLATIONS = (IntegrityError, psycopg.errors.UniqueViolation)
# The database (or the driver, dumping a value) refusing the rows themselves: a
# NUL in text, \u0000 in JSONB, a value too long or out of range, a constraint.
# Never the connection or the server (OperationalError): those pass, rows do not.
DATA_REFUSALS: tuple[type[Exception], ...] = (
    DataError,
    IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
)


def insert_missing(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
) -> int:
    """Insert `rows`, skipping any that conflict with a unique constraint;
    returns how many were inserted. `columns`: the keys of each row to write
    (default: all of the first row's), so a row may carry keys for another table."""
    if not rows:
        return 0
    names = list(rows[0]) if columns is None else list(columns)
    if session.get_bind().dialect.name == "postgresql":
        return _staged_insert(session, table, rows, names)
    stmt = sqlite.insert(table).on_conflict_do_nothing()
    return int(session.execute(stmt, _only(rows, names, columns)).rowcount)  # type: ignore[attr-defined]


def insert_new(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
) -> None:
    """Insert rows the caller knows are new; a unique violation raises. `columns`
    as for insert_missing."""
    if not rows:
        return
    names = list(rows[0]) if columns is None else list(columns)
    if session.get_bind().dialect.name != "postgresql":
        session.execute(table.insert(), _only(rows, names, columns))
        return
    dbapi: Any = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cursor:
        _copy(cursor, table, table.name, names, rows)


def _only(
    rows: Sequence[dict[str, Any]], names: list[str], columns: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The rows with just `names` (SQLAlchemy refuses a key that is no column)."""
    if columns is None:
        return list(rows)
    return [{name: row[name] for name in names} for row in rows]


def _staged_insert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], columns: list[str]
) -> int:
    stage = f"staged_{table.name}"
    names = ", ".join(columns)
    dbapi: Any = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cursor:
        # Per connection, emptied at every commit; the LIKE keeps it in step with migrations.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        _copy(cursor, table, stage, columns, rows)
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        # Emptied now too: a second call in the same transaction must not see these rows.
        cursor.execute(f"DELETE FROM {stage}")
    return inserted


def _copy(
    cursor: Any, table: Table, target: str, columns: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    with cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_copy_types(table, columns))
        for values in _copy_values(table, columns, rows):
            copy.write_row(values)


def _copy_values(
    table: Table, columns: list[str], rows: Sequence[dict[str, Any]]
) -> Iterator[list[Any]]:
    """Each row's values in column order, JSON documents wrapped for jsonb."""
    json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    for row in rows:
        values = [row[c] for c in columns]
        for i in json_at:
            if values[i] is not None:
                values[i] = Jsonb(values[i], dumps=_json_text)
        yield values


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _copy_types(table: Table, columns: list[str]) -> list[str]:
    """PostgreSQL type names for a binary COPY: text needs no escaping in binary
    form, which made loading 100,000 request rows about a third faster."""
    return [_pg_type(table.c[c].type) for c in columns]


def _pg_type(sql_type: TypeEngine[Any]) -> str:
    if isinstance(sql_type, TypeDecorator):
        return _pg_type(sql_type.impl_instance)
    if isinstance(sql_type, JSON):
        return "jsonb"
    for kind, name in _PG_TYPES:
        if isinstance(sql_type, kind):
            return name
    raise TypeError(f"no COPY type for {sql_type!r}")


_PG_TYPES: list[tuple[type[TypeEngine[Any]], str]] = [
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Boolean, "bool"),
    (DateTime, "timestamptz"),
    (Numeric, "numeric"),
    (String, "text"),
    (LargeBinary, "bytea"),
]
