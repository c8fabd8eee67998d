"""A full batch is cut as soon as intake has stored it, not at the next tick.

The maximum wait here is an hour, so nothing but fullness can cut a batch, and
intake reads five requests a chunk, so the stream still holds requests when
the first ten are in SQL. What is asserted is when the cut happened (how many
requests SQL held then), never how long anything took.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from batchline import runtime, tasks
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.sql import controls as controls_sql
from batchline.domain.states import RequestState
from batchline.models import Batch, Request
from batchline.producer import Producer
from batchline.services import assemble
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
ENQUEUED = 25


@pytest.fixture
def slow_timers(pipeline: Pipeline) -> Iterator[Pipeline]:
    """Batches of 10, chunks of 5, an hour's maximum wait; 25 requests enqueued one by
    one (a bundle could put them all in one chunk)."""
    pipeline.settings = pipeline.settings.replace(
        max_batch_requests=10,
        intake_chunk=5,
        max_wait_seconds=3600.0,
        intake_interval_seconds=3600.0,
    )
    producer = Producer(pipeline.settings)
    try:
        for _ in range(ENQUEUED):
            producer.enqueue(PARAMS)
        yield pipeline
    finally:
        producer.close()


def _in_sql(pipeline: Pipeline) -> int:
    with pipeline.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Request)) or 0)


def _batch_sizes(pipeline: Pipeline) -> list[int]:
    with pipeline.sessions() as session:
        return list(session.scalars(select(Batch.request_count).order_by(Batch.id)))


def test_intake__cuts_a_full_batch_while_the_rest_still_waits_in_the_stream(
    slow_timers: Pipeline, memory_api: MemoryBatchApi
) -> None:
    pipeline = slow_timers
    cuts: list[tuple[int, list[int]]] = []

    def when_full() -> None:
        cuts.append((_in_sql(pipeline), assemble.assemble_batches(pipeline)))

    moved = run_intake(pipeline, "c", when_full=when_full)

    assert moved == ENQUEUED
    # The first cut came when ten were stored, fifteen still in the stream.
    first_seen, first_made = cuts[0]
    assert first_seen < ENQUEUED and len(first_made) == 1
    assert _batch_sizes(pipeline) == [10, 10]
    # The last five are not a full batch: they wait for the maximum wait.
    with pipeline.sessions() as session:
        queued = session.scalar(select(func.count()).where(Request.state == RequestState.QUEUED))
    assert queued == 5


def test_intake_task__sends_the_submit_of_a_full_batch_before_intake_is_done(
    slow_timers: Pipeline, memory_api: MemoryBatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = slow_timers
    sent: list[tuple[int, int]] = []  # (batch id, requests in SQL when its submit was sent)

    class Recorder:
        @staticmethod
        def delay(batch_id: int) -> None:
            sent.append((batch_id, _in_sql(pipeline)))

    monkeypatch.setattr(runtime, "pipeline", lambda: pipeline)
    monkeypatch.setattr(tasks, "submit_batch_task", Recorder)

    assert tasks.intake_task() == ENQUEUED

    first_batch, stored_then = sent[0]
    # Sent by intake itself, mid-run: the tick's assembly at the end would see all 25.
    assert stored_then < ENQUEUED
    with pipeline.sessions() as session:
        batch_ids = set(session.scalars(select(Batch.id)))
    assert first_batch in batch_ids and {b for b, _ in sent} == batch_ids
    assert _batch_sizes(pipeline) == [10, 10]


def _cuts_asked(pipeline: Pipeline) -> list[list[int]]:
    """Intake run to the end; what each call of its when_full cut."""
    cuts: list[list[int]] = []
    assert (
        run_intake(
            pipeline, "c", when_full=lambda: cuts.append(assemble.assemble_batches(pipeline))
        )
        == ENQUEUED
    )
    return cuts


def test_intake__asks_for_no_cut_once_the_in_flight_capacity_is_used_up(
    slow_timers: Pipeline, memory_api: MemoryBatchApi
) -> None:
    # One batch of ten uses the capacity up; the fifteen behind it cannot go, and
    # intake must not count the queue for a cut after every chunk while they wait.
    pipeline = slow_timers
    pipeline.settings = pipeline.settings.replace(max_in_flight_requests=10)

    cuts = _cuts_asked(pipeline)

    assert [len(made) for made in cuts] == [1]
    assert _batch_sizes(pipeline) == [10]


def test_intake__asks_for_no_cut_while_submission_is_paused(
    slow_timers: Pipeline, memory_api: MemoryBatchApi
) -> None:
    pipeline = slow_timers
    with pipeline.sessions.begin() as session:
        controls_sql.pause_submission(session, "billing", pipeline.clock())

    assert _cuts_asked(pipeline) == []
    assert _batch_sizes(pipeline) == []


def test_assemble__a_cut_asked_for_a_full_batch_makes_none_of_what_is_left(
    slow_timers: Pipeline, memory_api: MemoryBatchApi
) -> None:
    # Two intakes at once both see the same full batch, and both ask for a cut.
    # What the first leaves has waited past the maximum wait (the clock is two
    # hours on), yet the second cut, asked for a full batch, must not make it a
    # small batch of its own: that is the tick's to cut.
    pipeline = slow_timers
    assert run_intake(pipeline, "c") == ENQUEUED
    pipeline.clock = lambda: datetime.now(UTC) + timedelta(hours=2)

    assert len(assemble.assemble_batches(pipeline, only_full=True)) == 2
    assert assemble.assemble_batches(pipeline, only_full=True) == []
    assert _batch_sizes(pipeline) == [10, 10]

    assert len(assemble.assemble_batches(pipeline)) == 1
    assert _batch_sizes(pipeline) == [10, 10, 5]
