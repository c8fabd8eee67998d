"""The deadline fallback's service over real SQL (SQLite and PostgreSQL) and Redis,
with the in-memory Batch API and a scripted synchronous Messages API, so each
race can be staged at the exact moment it matters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.messages_api import SyncCallFailed, SyncReply
from batchline.models import Batch, Fallback, Request, Result
from batchline.producer import Item, Producer
from batchline.services import assemble, fallback, ingest, poll, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.conftest import Clock

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 5},
}


class ScriptedMessages:
    """Answers each call with the next scripted step: an exception to raise, a
    callable to run first (a race staged mid-call), or None for a message."""

    def __init__(self, *steps: object) -> None:
        self.steps = list(steps)
        self.calls = 0

    def create(self, params: bytes, betas: Sequence[str] = ()) -> SyncReply:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else None
        if isinstance(step, Exception):
            raise step
        if callable(step):
            step()
        return SyncReply(orjson.dumps(MESSAGE))


@pytest.fixture
def live(pipeline: Pipeline, clock: Clock) -> Iterator[Pipeline]:
    # Deadlines are stamped from the real time at enqueue: the test clock starts there.
    clock.now = datetime.now(UTC)
    pipeline.settings = pipeline.settings.replace(sync_latency_seconds=10)
    with Producer(pipeline.settings) as producer:
        pipeline.producer = producer  # type: ignore[attr-defined]
        yield pipeline


def enqueue(pipeline: Pipeline, *items: Item) -> list[str]:
    handles = pipeline.producer.enqueue_many(items)  # type: ignore[attr-defined]
    run_intake(pipeline, "test-consumer")
    return [h.id for h in handles]


def into_batch(pipeline: Pipeline) -> int:
    [batch_id] = assemble.assemble_batches(pipeline)
    submit.submit_batch(pipeline, batch_id)
    return batch_id


def end_and_ingest(pipeline: Pipeline, api: MemoryBatchApi, batch_id: int) -> None:
    api.end_all()
    poll.poll_batch(pipeline, batch_id)
    ingest.ingest_batch(pipeline, batch_id)


def rows(pipeline: Pipeline, model: type[Any], *where: Any) -> list[Any]:
    with pipeline.sessions() as session:
        found: list[Any] = list(session.scalars(select(model).where(*where)))
        session.expunge_all()
        return found


def test_fallback__queued_request_goes_synchronously_once_its_deadline_nears(
    live: Pipeline, clock: Clock
) -> None:
    [request_id] = enqueue(live, Item(PARAMS, deadline=30))
    messages = ScriptedMessages()
    assert fallback.run_fallbacks(live, messages).called == 0  # 30 s left, latency 10 s
    clock.advance(21)
    report = fallback.run_fallbacks(live, messages)
    assert (report.due, report.settled, messages.calls) == (1, 1, 1)
    [request] = rows(live, Request, Request.id == request_id)
    [result] = rows(live, Result, Result.request_id == request_id)
    assert request.state == "succeeded" and request.batch_id is None
    assert (result.via, result.batch_id, result.duplicate) == ("sync", None, False)
    assert assemble.assemble_batches(live) == []  # nothing left to batch
    assert fallback.run_fallbacks(live, messages).called == 0  # sent once, never again


def test_fallback__in_batch_request_settles_once_and_the_batch_result_is_a_duplicate(
    live: Pipeline, clock: Clock, memory_api: MemoryBatchApi
) -> None:
    urgent, other = enqueue(live, Item(PARAMS, deadline=30), Item(PARAMS))
    batch_id = into_batch(live)
    clock.advance(25)
    report = fallback.run_fallbacks(live, ScriptedMessages())
    assert report.settled == 1 and report.batches_canceled == 0  # `other` still needs it
    end_and_ingest(live, memory_api, batch_id)
    by_via = {(r.via, r.duplicate) for r in rows(live, Result, Result.request_id == urgent)}
    assert by_via == {("sync", False), ("batch", True)}
    states = {r.id: r.state for r in rows(live, Request)}
    assert states == {urgent: "succeeded", other: "succeeded"}


def test_fallback__answer_after_the_batch_settled_is_kept_as_a_duplicate(
    live: Pipeline, clock: Clock, memory_api: MemoryBatchApi
) -> None:
    [urgent] = enqueue(live, Item(PARAMS, deadline=30))
    batch_id = into_batch(live)
    clock.advance(25)
    # The batch ends and is ingested while the synchronous call is in flight.
    messages = ScriptedMessages(lambda: end_and_ingest(live, memory_api, batch_id))
    report = fallback.run_fallbacks(live, messages)
    assert (report.settled, report.duplicates) == (0, 1)
    by_via = {(r.via, r.duplicate) for r in rows(live, Result, Result.request_id == urgent)}
    assert by_via == {("batch", False), ("sync", True)}


def test_fallback__batch_whose_every_request_fell_back_is_cancelled(
    live: Pipeline, clock: Clock
) -> None:
    enqueue(live, Item(PARAMS, deadline=30), Item(PARAMS, deadline=40))
    batch_id = into_batch(live)
    clock.advance(25)
    assert fallback.run_fallbacks(live, ScriptedMessages()).batches_canceled == 0
    clock.advance(10)
    assert fallback.run_fallbacks(live, ScriptedMessages()).batches_canceled == 1
    [batch] = rows(live, Batch, Batch.id == batch_id)
    assert batch.cancel_requested


def test_fallback__429_holds_every_call_for_its_retry_after_then_retries(
    live: Pipeline, clock: Clock
) -> None:
    [request_id] = enqueue(live, Item(PARAMS, deadline=30))
    clock.advance(21)
    messages = ScriptedMessages(SyncCallFailed("HTTP 429", 429, retry_after=3.0))
    assert fallback.run_fallbacks(live, messages).retried == 1
    clock.advance(1)
    assert fallback.run_fallbacks(live, messages).called == 0  # still rate limited
    clock.advance(3)
    assert fallback.run_fallbacks(live, messages).settled == 1
    [one] = rows(live, Fallback, Fallback.request_id == request_id)
    assert (one.state, one.tries, messages.calls) == ("done", 2, 2)


def test_fallback__refused_call_leaves_the_request_to_its_batch(
    live: Pipeline, clock: Clock, memory_api: MemoryBatchApi
) -> None:
    [request_id] = enqueue(live, Item(PARAMS, deadline=30))
    batch_id = into_batch(live)
    clock.advance(21)
    messages = ScriptedMessages(SyncCallFailed("HTTP 400 invalid_request_error", 400))
    assert fallback.run_fallbacks(live, messages).given_up == 1
    [request] = rows(live, Request, Request.id == request_id)
    assert request.state == "in_batch"
    end_and_ingest(live, memory_api, batch_id)
    [result] = rows(live, Result, Result.request_id == request_id)
    assert (result.via, result.duplicate) == ("batch", False)
    [batch] = rows(live, Batch, Batch.id == batch_id)
    assert not batch.cancel_requested


def test_fallback__request_batched_while_its_call_was_in_flight_gets_its_batch_cancelled(
    live: Pipeline, clock: Clock
) -> None:
    enqueue(live, Item(PARAMS, deadline=30))
    clock.advance(21)
    batched: list[int] = []
    # Still queued when it fell due; assembled into a batch during the call.
    messages = ScriptedMessages(lambda: batched.append(into_batch(live)))
    report = fallback.run_fallbacks(live, messages)
    assert (report.settled, report.batches_canceled) == (1, 1)
    [batch] = rows(live, Batch, Batch.id == batched[0])
    assert batch.cancel_requested
