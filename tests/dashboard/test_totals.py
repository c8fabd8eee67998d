"""The running totals the triggers keep equal a full count after every kind of
change (insert, state move, duplicate mark, delete with its cascade), on both
backends, and folding them changes no figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from batchline.adapters import queries, summaries
from batchline.database import make_engine, make_session_factory
from batchline.models import Batch, Request, Result

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _request(n: int, state: str = "queued", batch_id: int | None = None) -> Request:
    return Request(
        id=f"r{n}",
        state=state,
        params_bytes=2,
        model="m",
        tags={"team": f"t{n % 2}"},
        batch_id=batch_id,
        attempts=1 if batch_id else 0,
        charged_attempts=0,
        max_attempts=3,
        enqueued_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )


def _batch(request_count: int) -> Batch:
    """Batch 1, ended at the API, holding `request_count` requests."""
    return Batch(
        id=1,
        state="ended",
        request_count=request_count,
        created_at=NOW,
        updated_at=NOW,
        remote_id="msgbatch_1",
    )


def _result(n: int, kind: str = "succeeded", cost: str | None = "0.5", **tokens: int) -> Result:
    return Result(
        batch_id=1,
        custom_id=f"r{n}-1",
        request_id=f"r{n}" if n >= 0 else None,
        attempt=1,
        result_type=kind,
        error_type=None if kind == "succeeded" else "overloaded_error",
        line=b"{}",
        input_tokens=tokens.get("input", 10),
        output_tokens=5,
        cache_write_5m_tokens=tokens.get("write", 0),
        cache_write_1h_tokens=0,
        cache_read_tokens=tokens.get("read", 0),
        cost_usd=None if cost is None else Decimal(cost),
        duplicate=False,
        created_at=NOW + timedelta(days=n % 2),
    )


def _counted(session: Session) -> dict[str, Any]:
    """Every figure the totals answer, counted from the rows themselves."""
    states = dict(
        session.execute(select(Request.state, func.count()).group_by(Request.state)).all()
    )
    every = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Result.input_tokens), 0),
            func.coalesce(func.sum(Result.cache_read_tokens), 0),
            func.coalesce(func.sum(Result.cost_usd), 0),
            func.count().filter(Result.duplicate.is_(True)),
            func.count().filter(Result.request_id.is_(None)),
        )
    ).one()
    return {
        "states": {k: int(v) for k, v in states.items()},
        "results": int(every[0]),
        "input": int(every[1]),
        "read": int(every[2]),
        "cost": Decimal(str(every[3])),
        "duplicates": int(every[4]),
        "orphans": int(every[5]),
    }


def _from_totals(session: Session) -> dict[str, Any]:
    tokens = queries.token_totals(session)
    every = summaries.add(list(summaries.by_kind(session).values()))
    return {
        "states": queries.requests_by_state(session),
        "results": tokens.results,
        "input": tokens.input_tokens,
        "read": tokens.cache_read_tokens,
        "cost": every.cost_usd,
        "duplicates": tokens.duplicates,
        "orphans": queries.bad_results(session)["unknown_request"],
    }


def _same(session: Session) -> dict[str, Any]:
    counted = _counted(session)
    assert _from_totals(session) == counted
    return counted


def test_totals__follow_inserts_moves_duplicates_and_deletes(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as s:
            s.add(_batch(4))
            s.add_all(_request(n) for n in range(6))
        with sessions.begin() as s:
            assert _same(s)["states"] == {"queued": 6}
            s.execute(
                update(Request)
                .where(Request.id.in_(["r0", "r1", "r2", "r3"]))
                .values(state="in_batch", batch_id=1)
            )
            s.add_all(
                [_result(0, read=30), _result(1, cost=None), _result(2, "errored"), _result(-1)]
            )
        with sessions.begin() as s:
            assert _same(s)["states"] == {"queued": 2, "in_batch": 4}
            s.execute(
                update(Request)
                .where(Request.id.in_(["r0", "r1"]))
                .values(state="succeeded", batch_id=None, finished_at=NOW)
            )
            s.execute(
                update(Request)
                .where(Request.id == "r2")
                .values(state="failed", batch_id=None, finished_at=NOW)
            )
            s.execute(update(Result).where(Result.custom_id == "r1-1").values(duplicate=True))
            s.execute(update(Request).where(Request.id == "r4").values(updated_at=NOW))
        with sessions.begin() as s:
            figures = _same(s)
            assert figures["states"] == {"queued": 2, "in_batch": 1, "succeeded": 2, "failed": 1}
            assert figures["duplicates"] == 1 and figures["orphans"] == 1
            assert figures["read"] == 30 and figures["cost"] == Decimal("1.5")
            # As the purge does: a request's results go with it (no key cascades them).
            s.execute(delete(Result).where(Result.request_id == "r0"))
            s.execute(delete(Request).where(Request.id.in_(["r0", "r5"])))
        with sessions.begin() as s:
            figures = _same(s)
            assert figures["results"] == 3 and figures["read"] == 0
            assert summaries.compact(s) >= 0
        with sessions.begin() as s:
            assert _same(s) == figures
    finally:
        engine.dispose()


def test_totals__per_batch_and_day_answer_the_batch_page_and_the_cap(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as s:
            s.add(_batch(2))
            s.add_all(_request(n, "in_batch", 1) for n in range(3))
            s.add_all([_result(0, write=10, read=30), _result(1, "errored"), _result(2)])
        with sessions.begin() as s:
            stats = queries.batch_cache_stats(s, 1)
            assert (stats.cache_write_tokens, stats.cache_read_tokens, stats.input_tokens) == (
                10,
                30,
                30,
            )
            assert summaries.errors_of_batch(s, 1) == {"overloaded_error": 1}
            # Results of NOW's day: r0 and r2 (r1 is a day later); r1 only from the next day.
            assert summaries.spent_since_day(s, NOW.date())[0] == Decimal("1.5")
            assert summaries.spent_since_day(s, (NOW + timedelta(days=1)).date())[0] == Decimal(
                "0.5"
            )
    finally:
        engine.dispose()
