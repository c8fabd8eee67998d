"""Result ingestion: a results JSONL stream -> rows in SQL, requests settled.

batchline's side is the real `ingest_batch` over the real database, fed from a
results file through the BatchApi port (so the emulator's own streaming speed
is not what is measured). The floor decodes the same lines with orjson and
COPYs the same columns into a copy of the results table. The naive baseline
is what the seed notebook leads to: the SDK's JSONL decoder and pydantic
models, one ORM object inserted and committed per result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from batchline.adapters.notify import NullNotifier
from batchline.adapters.sql import intake as intake_sql
from batchline.database import make_engine, make_session_factory
from batchline.domain.custom_ids import new_request_id
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch
from batchline.runtime import freeze_long_lived_objects
from batchline.settings import Settings
from bench import floors
from bench.data import file_chunks, write_results_file
from bench.environment import fresh_database, quiesce_database
from bench.isolate import in_child, peak_memory
from bench.notebook_rows import NotebookBase, result_row
from bench.report import Emit, Figure, at_least, at_most

REMOTE_ID = "msgbatch_bench"


@dataclass(frozen=True)
class Case:
    database_url: str
    results_path: Path
    count: int


class FileResults:
    """The BatchApi port's `results`, served from a file in 1 MiB chunks."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextmanager
    def results(self, remote_id: str) -> Iterator[Iterator[bytes]]:
        yield file_chunks(self._path)

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the ingestion benchmark does not call {name}")


def prepare(case: Case) -> int:
    """An ended batch of `count` in-batch requests, and its results file; returns its bytes."""
    fresh_database(case.database_url)
    engine = make_engine(case.database_url)
    now = datetime.now(UTC)
    ids = [new_request_id() for _ in range(case.count)]
    with make_session_factory(engine).begin() as session:
        batch = Batch(
            state=BatchState.ENDED,
            origin="planned",
            remote_id=REMOTE_ID,
            processing_status="ended",
            request_count=case.count,
            body_bytes=0,
            created_at=now,
            updated_at=now,
            submit_tries=1,
            cancel_requested=False,
        )
        session.add(batch)
        session.flush()
        rows = [
            {
                "id": request_id,
                "idempotency_key": None,
                "state": RequestState.IN_BATCH.value,
                "params": "{}",
                "params_bytes": 2,
                "model": "claude-haiku-4-5",
                "batch_id": batch.id,
                "attempts": 1,
                "charged_attempts": 0,
                "max_attempts": 3,
                "cache_ttl_1h": False,
                "enqueued_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for request_id in ids
        ]
        for start in range(0, len(rows), 10_000):
            intake_sql.insert_requests(session, rows[start : start + 10_000])
    engine.dispose()
    return write_results_file(case.results_path, [(i, 1) for i in ids])


def measure_batchline(case: Case) -> dict[str, float]:
    """In a fresh process: the real ingest_batch, timed and memory-measured."""
    from batchline.services.context import Pipeline
    from batchline.services.ingest import ingest_batch

    engine = make_engine(case.database_url)
    settings = Settings(database_url=case.database_url)
    pipeline = Pipeline(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        api=FileResults(case.results_path),
        intake=None,  # type: ignore[arg-type]
        notifier=NullNotifier(),
    )
    with engine.connect():
        pass  # connect before the clock starts, as a running worker would be
    freeze_long_lived_objects()  # as every worker process does at start
    with pipeline.sessions() as session:
        batch_id = session.execute(text("SELECT id FROM batches")).scalar_one()
    with peak_memory() as memory:
        start = time.perf_counter()
        report = ingest_batch(pipeline, batch_id)
        seconds = time.perf_counter() - start
    if report is None or report.new_results != case.count:
        raise RuntimeError(f"ingestion did not take every result: {report}")
    return {"seconds": seconds, "peak": memory.peak, "start_rss": memory.start}


COPY_COLUMNS = (
    "batch_id, custom_id, request_id, attempt, result_type, error_type, error_message, line, "
    "model, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
    "cache_read_tokens, cost_usd, duplicate, created_at"
)


def _floor_row(line: bytes, batch_id: int, now: datetime) -> tuple[Any, ...]:
    doc = orjson.loads(line)
    result = doc["result"]
    message = result.get("message") or {}
    usage = message.get("usage") or {}
    custom_id = doc["custom_id"]
    return (
        batch_id,
        custom_id,
        custom_id[2:34],
        1,
        result["type"],
        None,
        None,
        line,
        message.get("model"),
        usage.get("input_tokens", 0),
        usage.get("output_tokens", 0),
        0,
        0,
        0,
        None,
        False,
        now,
    )


def measure_floor(case: Case) -> dict[str, float]:
    """In a fresh process: decode every line with orjson and COPY the rows into the
    results table (PostgreSQL) or executemany them (SQLite), then roll back."""
    engine = make_engine(case.database_url)
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        batch_id = conn.execute(text("SELECT id FROM batches")).scalar_one()
    now = datetime.now(UTC)
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()
        start = time.perf_counter()
        if postgres:
            with cursor.copy(f"COPY results ({COPY_COLUMNS}) FROM STDIN") as copy:
                for line in _lines(case.results_path):
                    copy.write_row(_floor_row(line, batch_id, now))
        else:
            # batchline's SQLite connections leave transactions to the caller: open one.
            cursor.execute("BEGIN")
            rows: list[tuple[Any, ...]] = []
            for line in _lines(case.results_path):
                rows.append(_floor_row(line, batch_id, now))
                if len(rows) == 2_000:
                    _sqlite_insert(cursor, rows)
                    rows = []
            if rows:
                _sqlite_insert(cursor, rows)
        seconds = time.perf_counter() - start
        raw.rollback()  # measured: the rows were written; the table stays as batchline will find it
    finally:
        raw.close()
    engine.dispose()
    return {"seconds": seconds}


def measure_physical(case: Case) -> dict[str, float]:
    """In a fresh process: orjson-decode every line (its custom_id is the key) and
    COPY (custom_id, the line's bytes) into a table with only a primary key, as
    text and then as bytea (one process for both: a spawn costs seconds here)."""

    def rows(as_text: bool) -> Iterator[tuple[str, Any]]:
        for line in _lines(case.results_path):
            yield orjson.loads(line)["custom_id"], line.decode() if as_text else line

    url = case.database_url
    text_seconds = floors.load_pk_only(url, rows(True), "text")
    quiesce_database(url)
    return {"text": text_seconds, "bytea": floors.load_pk_only(url, rows(False), "bytea")}


def _lines(path: Path) -> Iterator[bytes]:
    pending = b""
    for chunk in file_chunks(path):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        yield from lines
    if pending:
        yield pending


def _sqlite_insert(cursor: Any, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("?" * len(rows[0]))
    fixed = [(*r[:-1], r[-1].isoformat()) for r in rows]
    cursor.executemany(f"INSERT INTO results ({COPY_COLUMNS}) VALUES ({marks})", fixed)


def measure_naive(case: Case) -> dict[str, float]:
    """In a fresh process: SDK-parsed results, one ORM object committed at a time."""
    import httpx2
    from anthropic._decoders.jsonl import JSONLDecoder
    from anthropic.types.messages import MessageBatchIndividualResponse
    from sqlalchemy.orm import Session

    engine = make_engine(case.database_url)
    NotebookBase.metadata.drop_all(engine)
    NotebookBase.metadata.create_all(engine)
    start = time.perf_counter()
    decoder = JSONLDecoder(
        raw_iterator=file_chunks(case.results_path, 64 * 1024),
        line_type=MessageBatchIndividualResponse,
        http_response=httpx2.Response(200),
    )
    count = 0
    with Session(engine) as session:
        for entry in decoder:
            session.add(result_row(entry))
            session.commit()
            count += 1
    seconds = time.perf_counter() - start
    NotebookBase.metadata.drop_all(engine)
    engine.dispose()
    return {"seconds": seconds, "count": float(count)}


def run(
    database_url: str,
    workdir: Path,
    count: int,
    small: int,
    naive_count: int,
    label: str,
    emit: Emit,
    targets: bool,
) -> None:
    big = Case(database_url, workdir / f"results-{count}.jsonl", count)
    size = prepare(big)
    quiesce_database(database_url)
    floor = in_child(measure_floor, big)
    quiesce_database(database_url)
    physical = in_child(measure_physical, big)
    quiesce_database(database_url)
    ours = in_child(measure_batchline, big)
    rate = count / ours["seconds"]
    name = f"ingest {count:,} results ({label})"
    emit(Figure(name, rate, "results/s", note=f"{size / 1e6:.0f} MB of JSONL"))
    emit(Figure(f"  seconds ({label})", ours["seconds"], "s"))
    load = "COPY" if label == "postgresql" else "executemany"
    emit(
        Figure(
            f"  physical floor: orjson + {load} into a PK-only table, text ({label})",
            physical["text"],
            "s",
        )
    )
    emit(
        Figure(
            f"  physical floor: orjson + {load} into a PK-only table, bytea ({label})",
            physical["bytea"],
            "s",
            note="the type results.line is stored in",
        )
    )
    emit(
        Figure(
            f"  schema floor: orjson + {load} into results ({label})",
            floor["seconds"],
            "s",
            note="its indexes and foreign keys: a design choice, not a limit",
        )
    )
    emit(
        Figure(
            f"  batchline rate / physical text floor's ({label})",
            physical["text"] / ours["seconds"],
            "ratio",
            at_least(0.5) if targets else None,
        )
    )
    emit(
        Figure(f"  batchline / schema floor ({label})", ours["seconds"] / floor["seconds"], "ratio")
    )
    little = Case(database_url, workdir / f"results-{small}.jsonl", small)
    prepare(little)
    quiesce_database(database_url)
    ours_small = in_child(measure_batchline, little)
    emit(
        Figure(
            f"  peak memory {count:,} / {small:,} results ({label})",
            ours["peak"] / ours_small["peak"],
            "ratio",
            at_most(1.3) if targets else None,
            f"{ours['peak'] / 1e6:.0f} MB vs {ours_small['peak'] / 1e6:.0f} MB",
        )
    )
    naive_case = Case(database_url, workdir / f"results-{naive_count}.jsonl", naive_count)
    prepare(naive_case)
    naive = in_child(measure_naive, naive_case)
    naive_rate = naive["count"] / naive["seconds"]
    emit(
        Figure(
            f"  naive baseline, {naive_count:,} results ({label})",
            naive_rate,
            "results/s",
            note="SDK decoder + one ORM commit per result",
        )
    )
    emit(Figure(f"  batchline / naive ({label})", rate / naive_rate, "x faster"))
    for path in workdir.glob("results-*.jsonl"):
        path.unlink()
