"""A batch is looked at straight after its creation, by the task that created it,
not at the next sweep (which comes every poll interval, up to 5 s). Asserted on
what the task sends, never on time."""

from __future__ import annotations

import pytest

from batchline import runtime, tasks
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.domain.states import BatchState
from batchline.models import Batch
from batchline.producer import Producer
from batchline.services import assemble, poll
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.integration.sent_tasks import SentTasks

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _one_prepared_batch(pipeline: Pipeline) -> int:
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([PARAMS] * 3)
    run_intake(pipeline, "c")
    (batch_id,) = assemble.assemble_batches(pipeline)
    return batch_id


@pytest.fixture
def polls_sent(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> SentTasks:
    sent = SentTasks()
    monkeypatch.setattr(runtime, "pipeline", lambda: pipeline)
    monkeypatch.setattr(tasks, "poll_batch_task", sent)
    return sent


def test_submit_task__a_created_batch_is_polled_at_once(
    pipeline: Pipeline, memory_api: MemoryBatchApi, polls_sent: SentTasks
) -> None:
    batch_id = _one_prepared_batch(pipeline)

    assert tasks.submit_batch_task(batch_id) == "submitted"
    assert polls_sent.batch_ids == [batch_id]

    # That look finds a batch that ended already, and sends it to ingestion.
    memory_api.end_all()
    assert poll.poll_batch(pipeline, batch_id)
    with pipeline.sessions() as session:
        assert session.get(Batch, batch_id).state == BatchState.ENDED  # type: ignore[union-attr]


def test_submit_task__only_a_create_sends_a_poll(
    pipeline: Pipeline, memory_api: MemoryBatchApi, polls_sent: SentTasks
) -> None:
    batch_id = _one_prepared_batch(pipeline)
    assert tasks.submit_batch_task(batch_id) == "submitted"

    # A second delivery of the same submit finds it done: no second early look.
    assert tasks.submit_batch_task(batch_id) == "not-ready"
    assert polls_sent.batch_ids == [batch_id]
