"""An ended batch that found no free download slot is sent on as soon as one frees,
by the download that freed it, not at the next sweep (which comes every 5 s at
the default poll interval). Asserted on what the task sends, never on time."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from batchline import runtime, tasks
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.domain.states import BatchState
from batchline.models import Batch
from batchline.producer import Producer
from batchline.services import assemble, poll, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _two_ended_batches(pipeline: Pipeline, api: MemoryBatchApi) -> list[int]:
    pipeline.settings = pipeline.settings.replace(max_batch_requests=10, ingest_concurrency=1)
    producer = Producer(pipeline.settings)
    try:
        producer.enqueue_many([PARAMS] * 20)
    finally:
        producer.close()
    run_intake(pipeline, "c")
    made = assemble.assemble_batches(pipeline)
    for batch_id in made:
        submit.submit_batch(pipeline, batch_id)
    api.end_all()
    for batch_id in made:
        assert poll.poll_batch(pipeline, batch_id)
    assert len(made) == 2
    return made


def test_ingest_task__a_finished_download_sends_the_batch_that_waited_for_its_slot(
    pipeline: Pipeline, memory_api: MemoryBatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _two_ended_batches(pipeline, memory_api)
    sent: list[int] = []

    class Recorder:
        @staticmethod
        def delay(batch_id: int) -> None:
            sent.append(batch_id)

    ingest_task = tasks.ingest_batch_task
    monkeypatch.setattr(runtime, "pipeline", lambda: pipeline)
    monkeypatch.setattr(tasks, "ingest_batch_task", Recorder)

    assert ingest_task(first) == 10
    assert sent == [second]
    with pipeline.sessions() as session:
        assert session.get(Batch, second).state == BatchState.ENDED  # type: ignore[union-attr]
        done = session.scalars(select(Batch.state).where(Batch.id == first)).one()
    assert done == BatchState.INGESTED
