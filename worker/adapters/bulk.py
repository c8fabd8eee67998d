"""Inserting many rows at once, skipping those already present.

On PostgreSQL the rows are streamed with COPY into a temporary staging table,
then moved with one INSERT ... SELECT ... ON CONFLICT DO NOTHING. A multi-row
INSERT with bound parameters costs far more: psycopg parses the whole query
text on the client, and that query grows with every row (see bench/README.md
for the measurements). Elsewhere (SQLite), one executemany in the open
transaction is already the fast path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, Numeric, String, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

# COPY runs on the raw psycopg cursor, so its errors arrive unwrapped by SQLAlchemy.
UNIQUE_VIOLATIONS = (IntegrityError, psycopg.errors.UniqueViolation)


def insert_missing(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str] | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows`, skipping any that conflict (on `conflict`, or any unique
    constraint when None). Returns the `returning` column of the rows inserted,
    or one None per inserted row when `returning` is None."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _copy_insert(session, table, rows, conflict, returning)
    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    if returning is None:
        return [None] * int(session.execute(stmt, list(rows)).rowcount)  # type: ignore[attr-defined]
    return list(session.execute(stmt.returning(table.c[returning]), list(rows)).scalars())


def _copy_insert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str] | None,
    returning: str | None,
) -> list[Any]:
    columns = list(rows[0])
    stage = f"staged_{table.name}"
    names = ", ".join(columns)
    target = f"({', '.join(conflict)})" if conflict else ""
    tail = f" RETURNING {returning}" if returning else ""
    dbapi: Any = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cursor:
        # Per connection, emptied at every commit; the LIKE keeps it in step with migrations.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_copy_types(table, columns))
            for values in _copy_values(table, columns, rows):
                copy.write_row(values)
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} "
            f"ON CONFLICT {target} DO NOTHING{tail}"
        )
        inserted = [r[0] for r in cursor.fetchall()] if returning else [None] * cursor.rowcount
        # Emptied now too: a second call in the same transaction must not see these rows.
        cursor.execute(f"DELETE FROM {stage}")
    return inserted


def copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY rows straight into `table` (PostgreSQL only); the caller knows they are new."""
    if not rows:
        return
    columns = list(rows[0])
    dbapi: Any = session.connection().connection.dbapi_connection
    with (
        dbapi.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
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
]
