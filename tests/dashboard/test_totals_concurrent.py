"""Folding the running totals while other connections write (PostgreSQL).

Writer threads, each on its own connection, insert requests by COPY, move them
into a batch and to final states, store results by COPY (the ingestion
adapter), mark a duplicate and delete a request with its result, in many short
transactions. Beside them two threads fold the difference rows over and over
(`summaries.compact`, as beat does, and two folds may overlap), and a checker
reads, in one REPEATABLE READ snapshot at a time, the totals and a real count:
they must agree in every snapshot, and after the writers stop and a last fold,
the totals must still equal the count, with one row per key left.

A fold that read the sums and deleted the rows in separate statements, or that
deleted rows it did not sum, loses or doubles the writers' differences and
fails here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.orm import Session

from batchline.adapters import bulk, summaries
from batchline.adapters.sql import ingest as ingest_sql
from batchline.database import make_engine, make_session_factory
from batchline.models import Batch, Request, Result, ResultTotal

pytestmark = pytest.mark.integration

WRITERS = 3
ROUNDS = 25
PER_ROUND = 10
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _request_row(request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "idempotency_key": None,
        "state": "queued",
        "params_bytes": 2,
        "model": "m",
        "tags": None,
        "batch_id": None,
        "attempts": 0,
        "charged_attempts": 0,
        "max_attempts": 3,
        "enqueued_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _result_row(batch_id: int, request_id: str, n: int) -> dict[str, Any]:
    errored = n % 4 == 3
    return {
        "batch_id": batch_id,
        "custom_id": f"{request_id}-1",
        "request_id": request_id,
        "attempt": 1,
        "result_type": "errored" if errored else "succeeded",
        "error_type": "overloaded_error" if errored else None,
        "error_message": None,
        "line": b"{}",
        "model": "m",
        "input_tokens": 10 + n,
        "output_tokens": 5,
        "cache_write_5m_tokens": n % 3,
        "cache_write_1h_tokens": 0,
        "cache_read_tokens": 2 * n,
        "cost_usd": None if n % 5 == 4 else Decimal("0.00125"),
        "duplicate": False,
        # Two UTC days, so the totals keep more than one key per batch.
        "created_at": NOW + timedelta(days=n % 2),
        "via": "batch",
    }


def _write(url: str, writer: int) -> None:
    """One writer's rounds: each a few short transactions, as intake, assembly,
    ingestion, settling and the purge make them."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    batch_id = writer + 1
    requests = cast(Table, Request.__table__)
    try:
        for r in range(ROUNDS):
            ids = [f"w{writer}r{r}n{i}" for i in range(PER_ROUND)]
            with sessions.begin() as s:
                bulk.insert_new(s, requests, [_request_row(i) for i in ids])
            with sessions.begin() as s:
                s.execute(
                    update(Request)
                    .where(Request.id.in_(ids[:6]))
                    .values(state="in_batch", batch_id=batch_id, attempts=1)
                )
            with sessions.begin() as s:
                rows = [_result_row(batch_id, i, r + k) for k, i in enumerate(ids[:5])]
                ingest_sql.insert_results(s, batch_id, rows)
                s.execute(
                    update(Request)
                    .where(Request.id.in_(ids[:5]))
                    .values(state="succeeded", batch_id=None, finished_at=NOW)
                )
            with sessions.begin() as s:
                ingest_sql.mark_duplicates(s, batch_id, [f"{ids[0]}-1"])
                s.execute(delete(Result).where(Result.request_id == ids[1]))
                s.execute(delete(Request).where(Request.id == ids[1]))
                s.execute(
                    update(Request)
                    .where(Request.id == ids[9])
                    .values(state="canceled", finished_at=NOW)
                )
    finally:
        engine.dispose()


def _counted(session: Session) -> dict[str, Any]:
    """The figures, counted from the rows themselves."""
    states = session.execute(select(Request.state, func.count()).group_by(Request.state))
    by_batch = session.execute(
        select(
            Result.batch_id,
            func.count(),
            func.sum(Result.input_tokens),
            func.sum(Result.cache_read_tokens),
            func.sum(Result.cache_write_5m_tokens),
            func.coalesce(func.sum(Result.cost_usd), 0),
            func.count().filter(Result.duplicate.is_(True)),
        ).group_by(Result.batch_id)
    )
    return {
        "states": {state: int(n) for state, n in states},
        "batches": {
            int(b or 0): (int(n), int(i), int(rd), int(w), Decimal(str(c)), int(d))
            for b, n, i, rd, w, c, d in by_batch
        },
    }


def _from_totals(session: Session) -> dict[str, Any]:
    """The same figures from the running totals, as the dashboard reads them."""
    ids = list(range(1, WRITERS + 1))
    totals = summaries.totals_by_batch(session, ids)
    duplicates = {
        int(b): int(n)
        for b, n in session.execute(
            select(ResultTotal.batch_id, func.sum(ResultTotal.results))
            .where(ResultTotal.duplicate.is_(True))
            .group_by(ResultTotal.batch_id)
        )
    }
    return {
        "states": summaries.requests_by_state(session),
        "batches": {
            b: (
                t.results,
                t.input_tokens,
                t.cache_read_tokens,
                t.cache_write_5m_tokens,
                t.cost_usd,
                duplicates.get(b, 0),
            )
            for b, t in totals.items()
        },
    }


def _until(done: threading.Event, step: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        while not done.is_set():
            step()
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_totals__fold_beside_concurrent_writers_keeps_them_exact(pg_db: str) -> None:
    engine = make_engine(pg_db)
    sessions = make_session_factory(engine)
    snapshot = make_session_factory(engine.execution_options(isolation_level="REPEATABLE READ"))
    with sessions.begin() as s:
        s.add_all(
            Batch(
                id=b,
                state="submitted",
                request_count=ROUNDS * 6,
                created_at=NOW,
                updated_at=NOW,
                remote_id=f"msgbatch_{b}",
            )
            for b in range(1, WRITERS + 1)
        )
    folded: list[int] = []
    checks: list[bool] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def fold() -> None:
        with sessions.begin() as s:
            folded.append(summaries.compact(s))

    def check() -> None:
        # Totals and count in one snapshot: a fold is seen whole or not at all.
        with snapshot.begin() as s:
            checks.append(_from_totals(s) == _counted(s))

    writers = [threading.Thread(target=_write, args=(pg_db, w)) for w in range(WRITERS)]
    beside = [threading.Thread(target=_until, args=(done, fold, errors)) for _ in range(2)]
    beside.append(threading.Thread(target=_until, args=(done, check, errors)))
    try:
        for thread in [*beside, *writers]:
            thread.start()
        for thread in writers:
            thread.join(timeout=300)
        done.set()
        for thread in beside:
            thread.join(timeout=60)
        assert not errors, errors
        assert not any(t.is_alive() for t in [*writers, *beside])
        # The fold ran while the writers wrote, and really folded rows away.
        assert len(folded) > 1 and sum(folded) > 0
        assert checks and all(checks), f"{checks.count(False)} of {len(checks)} snapshots differ"

        with sessions.begin() as s:
            summaries.compact(s)
        with sessions.begin() as s:
            counted = _counted(s)
            assert _from_totals(s) == counted
            # What the writers did: per round 10 in, 1 deleted; 4 succeeded and the
            # first of them a duplicate result; 1 in a batch; 1 canceled; 3 queued.
            rounds = WRITERS * ROUNDS
            assert counted["states"] == {
                "succeeded": 4 * rounds,
                "in_batch": rounds,
                "canceled": rounds,
                "queued": 3 * rounds,
            }
            assert sum(b[0] for b in counted["batches"].values()) == 4 * rounds
            assert sum(b[5] for b in counted["batches"].values()) == rounds
            # Folded: one row per key.
            keys = s.scalar(
                text(
                    "SELECT count(*) FROM (SELECT DISTINCT batch_id, day, result_type,"
                    " error_type, duplicate, orphan, priced FROM result_totals) AS k"
                )
            )
            assert s.scalar(select(func.count()).select_from(ResultTotal)) == keys
            assert s.scalar(text("SELECT count(*) FROM request_state_counts")) == 4
    finally:
        done.set()
        engine.dispose()
