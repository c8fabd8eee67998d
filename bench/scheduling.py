"""Scheduling: three tenants under an in-flight limit, on a simulated clock.

Tenant `flood` enqueues 100,000 requests at once; `steady-a` and `steady-b`
enqueue 10 a second each. The API takes 20,000 requests in flight and ends each
batch PROCESSING_SECONDS after its create. Real time would take hours, so the
clock is simulated: every TICK_SECONDS the loop takes the tick's arrivals into
SQL, ends the batches whose time is up (the in-memory Batch API, then the real
`poll_batch`), and runs the real `assemble_batches` and `submit_batch` against
the real database. Reported: seconds from intake to submission per tenant, for
FIFO, fair shares, and the steady tenants at a higher priority.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from batchline.adapters.intake import IntakeEntry
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.sql import intake as intake_sql
from batchline.database import make_engine, make_session_factory
from batchline.domain.custom_ids import new_request_id
from batchline.models import Batch, Request
from batchline.services import assemble, poll, submit
from batchline.services.context import Pipeline
from batchline.services.intake import request_row
from batchline.settings import Settings
from bench.environment import fresh_database
from bench.report import Emit, Figure

TICK_SECONDS = 10.0
PROCESSING_SECONDS = 600.0
SIM_SECONDS = 3_600.0
STEADY_PER_SECOND = 10
LIMIT = 20_000
BODY = orjson.dumps(
    {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
)
STEADY = ("steady-a", "steady-b")


@dataclass(frozen=True)
class Variant:
    name: str
    share_tag: str = ""
    steady_priority: int = 0
    priority_max_wait: str = ""


VARIANTS = (
    Variant("fifo"),
    Variant("fair shares", share_tag="tenant"),
    Variant("priorities", steady_priority=3, priority_max_wait="3:10"),
)


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _rows(tenant: str, n: int, priority: int, share_tag: str, at: datetime) -> list[Any]:
    meta = {"model": "claude-test", "tags": {"tenant": tenant}, "priority": priority}
    rows = []
    for i in range(n):
        entry = IntakeEntry(new_request_id(), BODY, meta)
        row = request_row(entry, 3, at, share_tag)
        # Spread over the tick, as 10 a second arrive.
        row["created_at"] = row["enqueued_at"] = at - timedelta(seconds=i / (n or 1) * TICK_SECONDS)
        rows.append(row)
    return rows


def simulate(
    database_url: str, flood: int, variant: Variant, sim_seconds: float = SIM_SECONDS
) -> dict[str, list[float]]:
    """Seconds from intake to submission per tenant (submitted requests only),
    plus `<tenant> waiting` entries: how many were still queued at the end."""
    fresh_database(database_url)
    clock = _Clock()
    api = MemoryBatchApi(now=clock)
    settings = Settings(
        database_url=database_url,
        max_in_flight_requests=LIMIT,
        max_batch_requests=10_000,
        max_wait_seconds=60,
        prime_min_group=0,
        share_tag=variant.share_tag,
        priority_max_wait=variant.priority_max_wait,
    )
    engine = make_engine(database_url)
    pipeline = Pipeline(settings, engine, make_session_factory(engine), api, None, None, clock)  # type: ignore[arg-type]
    submitted: dict[int, datetime] = {}
    try:
        _insert(pipeline, _rows("flood", flood, 0, variant.share_tag, clock.now))
        while (clock.now - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds() < sim_seconds:
            clock.now += timedelta(seconds=TICK_SECONDS)
            arrivals = int(STEADY_PER_SECOND * TICK_SECONDS)
            priority = variant.steady_priority
            for tenant in STEADY:
                _insert(pipeline, _rows(tenant, arrivals, priority, variant.share_tag, clock.now))
            _end_due(pipeline, api, submitted, clock.now)
            for batch_id in assemble.assemble_batches(pipeline, max_batches=20):
                if submit.submit_batch(pipeline, batch_id) == "submitted":
                    submitted[batch_id] = clock.now
            for batch_id in submit.submit_ready_batches(pipeline):
                if submit.submit_batch(pipeline, batch_id) == "submitted":
                    submitted[batch_id] = clock.now
        return _waits(pipeline, submitted)
    finally:
        engine.dispose()


def _insert(pipeline: Pipeline, rows: list[Any]) -> None:
    with pipeline.sessions.begin() as session:
        intake_sql.insert_requests(session, rows)


def _end_due(
    pipeline: Pipeline, api: MemoryBatchApi, submitted: dict[int, datetime], now: datetime
) -> None:
    with pipeline.sessions() as session:
        stmt = select(Batch.id, Batch.remote_id).where(Batch.state == "submitted")
        live = {batch_id: remote_id for batch_id, remote_id in session.execute(stmt)}
    for batch_id, remote_id in live.items():
        if (now - submitted[batch_id]).total_seconds() >= PROCESSING_SECONDS and remote_id:
            api.end(remote_id)
            poll.poll_batch(pipeline, batch_id)


def _waits(pipeline: Pipeline, submitted: dict[int, datetime]) -> dict[str, list[float]]:
    waits: dict[str, list[float]] = {}
    with pipeline.sessions() as session:
        stmt = select(Request.tags, Request.created_at, Request.batch_id)
        for tags, created, batch_id in session.execute(stmt):
            tenant = tags["tenant"]
            if batch_id in submitted:
                waits.setdefault(tenant, []).append((submitted[batch_id] - created).total_seconds())
            else:
                waits.setdefault(f"{tenant} waiting", []).append(0.0)
    return waits


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(database_url: str, flood: int, emit: Emit, sim_seconds: float = SIM_SECONDS) -> None:
    for variant in VARIANTS:
        waits = simulate(database_url, flood, variant, sim_seconds)
        for tenant in ("flood", *STEADY):
            values = waits.get(tenant, [])
            left = len(waits.get(f"{tenant} waiting", []))
            for label, value in _summary(values):
                emit(
                    Figure(
                        f"scheduling {variant.name}: {tenant} {label}",
                        value,
                        "s",
                        note=f"{len(values):,} submitted, {left:,} still queued (simulated clock)",
                    )
                )


def _summary(values: list[float]) -> Iterator[tuple[str, float]]:
    if not values:
        yield "p50", float("nan")
        return
    yield "p50", statistics.median(values)
    yield "p95", _percentile(values, 0.95)
    yield "max", max(values)
