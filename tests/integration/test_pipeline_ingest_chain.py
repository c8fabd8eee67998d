"""An ended batch that found no free download slot is sent on as soon as one frees,
by the download that freed it, not at the next sweep (which comes every 5 s at
the default poll interval). Asserted on what the task sends, never on time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from batchline import runtime, tasks
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.sql import ingest_lease as ingest_lease_sql
from batchline.domain.states import BatchState
from batchline.models import Batch
from batchline.producer import Producer
from batchline.services import assemble, poll, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.integration.sent_tasks import SentTasks

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _ended_batches(pipeline: Pipeline, api: MemoryBatchApi, count: int = 2) -> list[int]:
    """`count` ended batches of ten, waiting for ingestion, with one download slot."""
    pipeline.settings = pipeline.settings.replace(max_batch_requests=10, ingest_concurrency=1)
    producer = Producer(pipeline.settings)
    try:
        producer.enqueue_many([PARAMS] * (10 * count))
    finally:
        producer.close()
    run_intake(pipeline, "c")
    made = assemble.assemble_batches(pipeline)
    for batch_id in made:
        submit.submit_batch(pipeline, batch_id)
    api.end_all()
    for batch_id in made:
        assert poll.poll_batch(pipeline, batch_id)
    assert len(made) == count
    return made


def test_ingest_task__a_finished_download_sends_the_batch_that_waited_for_its_slot(
    pipeline: Pipeline, memory_api: MemoryBatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _ended_batches(pipeline, memory_api)
    sent = SentTasks()
    ingest_task = tasks.ingest_batch_task
    monkeypatch.setattr(runtime, "pipeline", lambda: pipeline)
    monkeypatch.setattr(tasks, "ingest_batch_task", sent)

    assert ingest_task(first) == 10
    assert sent.batch_ids == [second]
    with pipeline.sessions() as session:
        assert session.get(Batch, second).state == BatchState.ENDED  # type: ignore[union-attr]
        done = session.scalars(select(Batch.state).where(Batch.id == first)).one()
    assert done == BatchState.INGESTED


def test_sweep__sends_ingestion_no_more_batches_than_there_are_free_slots(
    pipeline: Pipeline, memory_api: MemoryBatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *_rest = _ended_batches(pipeline, memory_api, count=3)
    ingests, others = SentTasks(), SentTasks()
    monkeypatch.setattr(runtime, "pipeline", lambda: pipeline)
    monkeypatch.setattr(tasks, "ingest_batch_task", ingests)
    monkeypatch.setattr(tasks, "poll_batch_task", others)
    monkeypatch.setattr(tasks, "submit_batch_task", others)

    tasks.sweep_task()
    # One slot: one task, for the oldest; the other two would only find no slot.
    assert ingests.batch_ids == [first]

    # That download running holds the slot: the next sweep sends none.
    now = pipeline.clock()
    lease = timedelta(seconds=pipeline.settings.ingest_lease_seconds)
    with pipeline.sessions.begin() as session:
        assert ingest_lease_sql.take_ingest_lease(session, first, now, now + lease, 1)
    tasks.sweep_task()
    assert ingests.batch_ids == [first]
