"""Physical floors: what the hardware does with the same bytes, whatever the schema.

A schema floor (COPY into a copy of `requests` or `results`, with their
indexes and foreign keys) measures batchline's own design choices; these
measure the parts underneath: a table with only a primary key, one column of
the bytes, loaded by the fastest path the database has (binary COPY on
PostgreSQL, one executemany transaction on SQLite), and Redis writing the same
stream entries batchline reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis
from sqlalchemy import text

from batchline.database import make_engine

FLOOR_TABLE = "floor_plain"


def load_pk_only(url: str, rows: Iterable[tuple[str, Any]], column_type: str) -> float:
    """Seconds to load (key, value) rows into a fresh table `(key text PRIMARY
    KEY, value <column_type>)` and commit; the table is dropped after.

    `rows` may be a generator: whatever it does per row (decoding, say) is timed too.
    """
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    sql_type = column_type if postgres else {"bytea": "BLOB"}.get(column_type, "TEXT")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {FLOOR_TABLE}"))
        conn.execute(text(f"CREATE TABLE {FLOOR_TABLE} (key text PRIMARY KEY, value {sql_type})"))
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()
        start = time.perf_counter()
        if postgres:
            copy_sql = f"COPY {FLOOR_TABLE} (key, value) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(copy_sql) as copy:
                copy.set_types(["text", column_type])
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.execute("BEGIN")  # batchline's SQLite connections leave it to the caller
            cursor.executemany(f"INSERT INTO {FLOOR_TABLE} VALUES (?, ?)", rows)
        raw.commit()
        seconds = time.perf_counter() - start
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {FLOOR_TABLE}"))
    engine.dispose()
    return seconds


def redis_write(redis_url: str, entries: list[dict[bytes, bytes]]) -> float:
    """Seconds to XADD these stream entries (pipelined) to a scratch stream; deleted after."""
    client = redis.Redis.from_url(redis_url)
    key = "bench:floor:xadd"
    client.delete(key)
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for fields in entries:
        pipe.xadd(key, fields)  # type: ignore[arg-type]
    pipe.execute()
    seconds = time.perf_counter() - start
    client.delete(key)
    client.close()
    return seconds
