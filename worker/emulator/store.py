"""Batch storage: SQLite for batch rows and each request's custom_id and plan;
one append-only file per batch for the requests' params bytes.

Nothing about a batch is kept in memory: a 100,000-request batch is one
`executemany` in one transaction while its params stream to its file (SQLite
would write 150 MB twice under WAL), and results are read back in pages.
Writes go through one lock (SQLite has one writer anyway); reads use pooled
connections under WAL, so a long results download does not block creates.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    natural_end_at REAL,
    cancel_initiated_at REAL,
    ended_at REAL,
    end_reason TEXT,
    request_count INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    errored INTEGER NOT NULL DEFAULT 0,
    canceled INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    response_lost INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS requests (
    batch_seq INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    params_offset INTEGER NOT NULL,
    params_length INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    done_at REAL,
    long_chars INTEGER NOT NULL,
    cache_key BLOB,
    cache_ttl REAL,
    cache_hit INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_batch ON requests (batch_seq, done_at);
CREATE TABLE IF NOT EXISTS prompt_cache (
    key BLOB PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""

_BATCH_COLUMNS = (
    "seq, id, created_at, expires_at, natural_end_at, cancel_initiated_at, ended_at, "
    "end_reason, request_count, succeeded, errored, canceled, expired, deleted_at, response_lost"
)
_RESULT_PAGE = 2000

# (custom_id, params, outcome, error_type, error_message, done_at, long_chars,
#  cache_key, cache_ttl, cache_hit)
RequestInsert = tuple[
    str, bytes, str, str | None, str | None, float | None, int, bytes | None, float | None, int
]


@dataclass(frozen=True)
class BatchRow:
    seq: int
    id: str
    created_at: float
    expires_at: float
    natural_end_at: float | None
    cancel_initiated_at: float | None
    ended_at: float | None
    end_reason: str | None
    request_count: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    deleted_at: float | None
    response_lost: bool


@dataclass(frozen=True)
class RequestRow:
    custom_id: str
    params: bytes
    outcome: str
    error_type: str | None
    error_message: str | None
    done_at: float | None
    long_chars: int
    cache_hit: bool


class Store:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._params_dir = path.parent / "params"
        self._params_dir.mkdir(exist_ok=True)
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        with self.connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._pool_lock:
                self._idle.append(conn)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA busy_timeout=30000")
        with self._pool_lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._pool_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._idle.clear()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    def insert_batch(
        self,
        row: BatchRow,
        requests: Iterable[RequestInsert],
        natural_end_at: Callable[[], float | None],
    ) -> BatchRow:
        """Insert a batch and its requests; `natural_end_at` is asked once they are
        all in (planning them decides whether the batch can end on its own)."""
        params_path = self._params_path(row.id)
        try:
            seq = self._insert(row, requests, natural_end_at, params_path)
        except BaseException:
            params_path.unlink(missing_ok=True)
            raise
        found = self.get(row.id)
        assert found is not None and found.seq == seq
        return found

    def _insert(
        self,
        row: BatchRow,
        requests: Iterable[RequestInsert],
        natural_end_at: Callable[[], float | None],
        params_path: Path,
    ) -> int:
        with self._writing() as conn, params_path.open("wb") as params_file:
            cursor = conn.execute(
                "INSERT INTO batches (id, created_at, expires_at, natural_end_at, request_count)"
                " VALUES (?, ?, ?, ?, ?)",
                (row.id, row.created_at, row.expires_at, row.natural_end_at, row.request_count),
            )
            seq = cursor.lastrowid
            assert seq is not None
            conn.executemany(
                "INSERT INTO requests (batch_seq, custom_id, params_offset, params_length,"
                " outcome, error_type, error_message, done_at, long_chars, cache_key, cache_ttl,"
                " cache_hit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _spooled(seq, requests, params_file),
            )
            conn.execute(
                "UPDATE batches SET natural_end_at = ? WHERE seq = ?", (natural_end_at(), seq)
            )
        return seq

    def _params_path(self, batch_id: str) -> Path:
        return self._params_dir / f"{batch_id}.params"

    def get(self, batch_id: str) -> BatchRow | None:
        with self.connection() as conn:
            found = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
        return _batch(found) if found else None

    def unended(self) -> list[BatchRow]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE ended_at IS NULL"
            ).fetchall()
        return [_batch(r) for r in rows]

    def page(self, limit: int, *, after_seq: int | None, before_seq: int | None) -> list[BatchRow]:
        """Up to limit + 1 live batches, newest first, strictly older than after_seq
        or (taking the ones nearest to it) strictly newer than before_seq."""
        where, order, bound = "deleted_at IS NULL", "DESC", None
        if after_seq is not None:
            where, bound = where + " AND seq < ?", after_seq
        elif before_seq is not None:
            where, order, bound = where + " AND seq > ?", "ASC", before_seq
        args = ((bound,) if bound is not None else ()) + (limit + 1,)
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE {where} ORDER BY seq {order} LIMIT ?",
                args,
            ).fetchall()
        return [_batch(r) for r in rows]

    def all_batches(self) -> list[BatchRow]:
        with self.connection() as conn:
            rows = conn.execute(f"SELECT {_BATCH_COLUMNS} FROM batches ORDER BY seq").fetchall()
        return [_batch(r) for r in rows]

    def settle(self, seq: int, *, ended_at: float, reason: str, cutoff: float) -> None:
        """Record a batch's end and its final counts; a no-op if already recorded."""
        cut_outcome = "canceled" if reason == "canceled" else "expired"
        with self._writing() as conn:
            counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
            for outcome, count in conn.execute(
                "SELECT CASE WHEN done_at IS NULL OR done_at > ? THEN ? ELSE outcome END AS o,"
                " COUNT(*) FROM requests WHERE batch_seq = ? GROUP BY o",
                (cutoff, cut_outcome, seq),
            ):
                counts[outcome] += count
            # Only the first settler writes: retrieve and list may race to it.
            conn.execute(
                "UPDATE batches SET ended_at = ?, end_reason = ?, succeeded = ?, errored = ?,"
                " canceled = ?, expired = ? WHERE seq = ? AND ended_at IS NULL",
                (ended_at, reason, *counts.values(), seq),
            )
            conn.execute(
                "INSERT INTO prompt_cache (key, expires_at)"
                " SELECT cache_key, MAX(done_at + cache_ttl) FROM requests"
                " WHERE batch_seq = ? AND cache_key IS NOT NULL AND outcome = 'succeeded'"
                " AND done_at <= ? GROUP BY cache_key"
                " ON CONFLICT (key)"
                " DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
                (seq, cutoff),
            )

    def cancel(self, seq: int, now: float) -> None:
        with self._writing() as conn:
            conn.execute(
                "UPDATE batches SET cancel_initiated_at = ?"
                " WHERE seq = ? AND cancel_initiated_at IS NULL AND ended_at IS NULL",
                (now, seq),
            )

    def delete(self, row: BatchRow, now: float) -> None:
        # Request rows stay, so the emulator's records still name every custom_id.
        with self._writing() as conn:
            conn.execute("UPDATE batches SET deleted_at = ? WHERE seq = ?", (now, row.seq))
        self._params_path(row.id).unlink(missing_ok=True)

    def mark_response_lost(self, seq: int) -> None:
        with self._writing() as conn:
            conn.execute("UPDATE batches SET response_lost = 1 WHERE seq = ?", (seq,))

    def live_cache_keys(self, now: float) -> set[bytes]:
        with self.connection() as conn:
            rows = conn.execute("SELECT key FROM prompt_cache WHERE expires_at >= ?", (now,))
            return {bytes(key) for (key,) in rows}

    def write_cache(self, key: bytes, expires_at: float) -> None:
        """A prompt-cache write by a synchronous message (batches write theirs at settling)."""
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO prompt_cache (key, expires_at) VALUES (?, ?) ON CONFLICT (key)"
                " DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
                (key, expires_at),
            )

    def custom_ids(self, seq: int) -> list[str]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT custom_id FROM requests WHERE batch_seq = ? ORDER BY rowid", (seq,)
            )
            return [custom_id for (custom_id,) in rows]

    def requests(self, row: BatchRow) -> Iterator[RequestRow]:
        """The batch's requests in the order they were done (as the API: not request
        order), read page by page."""
        with self.connection() as conn, self._params_path(row.id).open("rb") as params:
            cursor = conn.execute(
                "SELECT custom_id, params_offset, params_length, outcome, error_type,"
                " error_message, done_at, long_chars, cache_hit FROM requests"
                " WHERE batch_seq = ? ORDER BY done_at",
                (row.seq,),
            )
            fd = params.fileno()
            try:
                while page := cursor.fetchmany(_RESULT_PAGE):
                    for r in page:
                        raw = os.pread(fd, r[2], r[1])
                        yield RequestRow(r[0], raw, r[3], r[4], r[5], r[6], r[7], r[8] == 1)
            finally:
                cursor.close()


def _spooled(
    seq: int, requests: Iterable[RequestInsert], params_file: BinaryIO
) -> Iterator[tuple[object, ...]]:
    """The rows to insert, each request's params written to the batch's file on the way."""
    offset = 0
    for custom_id, raw, *plan in requests:
        params_file.write(raw)
        yield (seq, custom_id, offset, len(raw), *plan)
        offset += len(raw)


def _batch(r: tuple[object, ...]) -> BatchRow:
    values = list(r)
    values[-1] = bool(values[-1])
    return BatchRow(*values)  # type: ignore[arg-type]
