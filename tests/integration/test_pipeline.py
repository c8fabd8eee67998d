"""The pipeline's services over real SQL (SQLite and PostgreSQL) and real Redis.

The Batch API is the in-memory port here, so each step is driven by hand and
each invariant of DESIGN.md can be checked at the exact moment it matters.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from batchline.adapters.batch_api import CreateNotAccepted, CreateRefused
from batchline.adapters.memory_api import MemoryBatchApi, succeed
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import submit as submit_sql
from batchline.domain.states import BatchState
from batchline.models import Batch, Request, Result
from batchline.producer import Producer
from batchline.services import assemble, ingest, poll, reconcile, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.conftest import Clock

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def producer() -> Iterator[Callable[[Pipeline], Producer]]:
    made: list[Producer] = []

    def make(pipeline: Pipeline) -> Producer:
        made.append(Producer(pipeline.settings))
        return made[-1]

    yield make
    for p in made:
        p.close()


def to_sql_and_submit(pipeline: Pipeline) -> list[int]:
    run_intake(pipeline, "test-consumer")
    made = assemble.assemble_batches(pipeline)
    for batch_id in made:
        submit.submit_batch(pipeline, batch_id)
    return made


def end_and_ingest(pipeline: Pipeline, api: MemoryBatchApi) -> None:
    api.end_all()
    for batch_id in poll.lease_due_polls(pipeline) or _submitted(pipeline):
        poll.poll_batch(pipeline, batch_id)
    for batch_id in poll.batches_to_ingest(pipeline):
        ingest.ingest_batch(pipeline, batch_id)


def _submitted(pipeline: Pipeline) -> list[int]:
    with pipeline.sessions() as session:
        return list(session.scalars(select(Batch.id).where(Batch.state == BatchState.SUBMITTED)))


def states(pipeline: Pipeline) -> dict[str, int]:
    with pipeline.sessions() as session:
        rows = session.execute(select(Request.state, func.count()).group_by(Request.state))
        return {s: n for s, n in rows}


def test_pipeline__enqueued_requests_come_back_succeeded(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    handles = producer(pipeline).enqueue_many([PARAMS] * 5)
    assert [h.status() for h in handles] == ["pending"] * 5

    [batch_id] = to_sql_and_submit(pipeline)
    assert {h.status() for h in handles} == {"in_batch"}
    clock.advance(5)
    end_and_ingest(pipeline, memory_api)

    for handle in handles:
        result = handle.result(timeout=1)
        assert result.type == "succeeded"
        reply = result.message.content[0].text  # type: ignore[union-attr]
        assert reply.startswith("reply to bl") and f"_{handle.id}-1" in reply
    with pipeline.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.state == BatchState.INGESTED
        assert batch.count_succeeded == 5 and batch.processing_status == "ended"


def test_ingest__twice_changes_nothing(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    producer(pipeline).enqueue_many([PARAMS] * 4)
    [batch_id] = to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    before = _snapshot(pipeline)

    # Force a second ingestion of the same results, as a redelivered task would.
    with pipeline.sessions.begin() as session:
        session.get(Batch, batch_id).state = BatchState.ENDED  # type: ignore[union-attr]
    report = ingest.ingest_batch(pipeline, batch_id)

    assert report is not None and report.lines == 4 and report.new_results == 0
    assert _snapshot(pipeline) == before


def _snapshot(pipeline: Pipeline) -> list[Any]:
    with pipeline.sessions() as session:
        reqs = session.execute(
            select(Request.id, Request.state, Request.charged_attempts).order_by(Request.id)
        ).all()
        results = session.execute(
            select(Result.custom_id, Result.result_type, Result.duplicate).order_by(Result.id)
        ).all()
    return [list(reqs), list(results)]


def test_submit__lost_create_answer_is_claimed_by_its_results_not_paid_twice(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    handles = producer(pipeline).enqueue_many([PARAMS] * 3)
    memory_api.lose_next_creates = 1
    [batch_id] = to_sql_and_submit(pipeline)
    assert _batch_state(pipeline, batch_id) == BatchState.UNKNOWN

    # Not yet ripe: an in-flight create could still record the remote batch.
    assert reconcile.reconcile(pipeline).tracked == []
    clock.advance(pipeline.settings.create_timeout_seconds + 61)
    report = reconcile.reconcile(pipeline)

    assert report.tracked == list(memory_api.batches) and report.released == []
    assert memory_api.create_calls == 1 and len(memory_api.batches) == 1
    end_and_ingest(pipeline, memory_api)
    assert {h.result(timeout=1).type for h in handles} == {"succeeded"}
    # The intent its results emptied is released, and nothing goes round again.
    assert reconcile.reconcile(pipeline).released == [batch_id]
    with pipeline.sessions() as session:
        assert set(session.scalars(select(Request.charged_attempts))) == {1}
        assert set(session.scalars(select(Request.attempts))) == {1}


def test_submit__crash_after_create_before_record_is_adopted(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    producer(pipeline).enqueue_many([PARAMS] * 2)
    run_intake(pipeline, "c")
    [batch_id] = assemble.assemble_batches(pipeline)
    # The worker commits its intent, the create succeeds remotely, then it dies.
    with pipeline.sessions.begin() as session:
        assert submit_sql.begin_submission(session, batch_id, clock())
        deployment = controls_sql.deployment_name(session, "", clock())
    with pipeline.engine.connect() as conn:
        memory_api.create(submit_sql.iter_batch_body(conn, batch_id, deployment))

    clock.advance(pipeline.settings.create_timeout_seconds + 61)
    report = reconcile.reconcile(pipeline)

    assert report.marked_unknown == [batch_id] and report.tracked == list(memory_api.batches)
    end_and_ingest(pipeline, memory_api)
    assert states(pipeline) == {"succeeded": 2}


def test_reconcile__create_that_made_nothing_releases_requests(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    from batchline.adapters.batch_api import CreateOutcomeUnknown

    producer(pipeline).enqueue_many([PARAMS] * 2)
    memory_api.refuse_next_creates.append(CreateOutcomeUnknown("connection reset"))
    [batch_id] = to_sql_and_submit(pipeline)
    assert _batch_state(pipeline, batch_id) == BatchState.UNKNOWN

    clock.advance(2 * (pipeline.settings.create_timeout_seconds + 61))
    assert reconcile.reconcile(pipeline).released == [batch_id]
    assert states(pipeline) == {"queued": 2}

    assert len(to_sql_and_submit(pipeline)) == 1
    end_and_ingest(pipeline, memory_api)
    assert states(pipeline) == {"succeeded": 2}
    with pipeline.sessions() as session:
        # A never-created batch uses up no retry.
        assert set(session.scalars(select(Request.charged_attempts))) == {1}
        assert set(session.scalars(select(Request.attempts))) == {2}


def test_reconcile__stray_duplicate_batch_is_tracked_and_counted(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    from batchline.adapters.batch_api import CreateOutcomeUnknown

    handles = producer(pipeline).enqueue_many([PARAMS] * 2)
    memory_api.lose_next_creates = 1
    [first] = to_sql_and_submit(pipeline)
    # Someone (an SDK retry, an old client) sent the same body again.
    with pipeline.sessions.begin() as session:
        deployment = controls_sql.deployment_name(session, "", clock())
    with pipeline.engine.connect() as conn, pytest.raises(CreateOutcomeUnknown):
        memory_api.lose_next_creates = 1
        memory_api.create(submit_sql.iter_batch_body(conn, first, deployment))
    clock.advance(pipeline.settings.create_timeout_seconds + 61)
    report = reconcile.reconcile(pipeline)

    assert len(report.tracked) == 2
    end_and_ingest(pipeline, memory_api)
    assert {h.result(timeout=1).type for h in handles} == {"succeeded"}
    with pipeline.sessions() as session:
        dupes = session.scalar(select(func.count()).where(Result.duplicate.is_(True)))
        wins = session.scalar(select(func.count()).where(Result.duplicate.is_(False)))
    assert dupes == 2 and wins == 2


def _batch_state(pipeline: Pipeline, batch_id: int) -> str:
    with pipeline.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.state


def _responder(plan: dict[int, list[dict[str, Any]]]) -> Callable[..., dict[str, Any]]:
    """Answer attempt N of every request with plan[N] (default: succeed)."""

    def respond(custom_id: str, params: dict[str, Any]) -> dict[str, Any]:
        attempt = int(custom_id.rsplit("-", 1)[1])
        answers = plan.get(attempt)
        return answers[0] if answers else succeed(custom_id, params)

    return respond


def _errored(kind: str) -> dict[str, Any]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": kind}}}


@pytest.mark.parametrize("first", [_errored("overloaded_error"), {"type": "expired"}])
def test_retry__retriable_result_goes_round_again_then_succeeds(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    first: dict[str, Any],
) -> None:
    memory_api.respond = _responder({1: [first]})
    [handle] = producer(pipeline).enqueue_many([PARAMS])
    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    assert handle.status() == "queued"

    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    assert handle.result(timeout=1).type == "succeeded"
    with pipeline.sessions() as session:
        history = session.scalars(select(Result.result_type).order_by(Result.id)).all()
    assert history == [first["type"], "succeeded"]


def test_retry__invalid_request_is_final_at_once(
    pipeline: Pipeline, producer: Callable[[Pipeline], Producer], memory_api: MemoryBatchApi
) -> None:
    memory_api.respond = _responder({1: [_errored("invalid_request_error")]})
    [handle] = producer(pipeline).enqueue_many([PARAMS])
    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    result = handle.result(timeout=1)
    assert result.type == "errored" and result.error.error.type == "invalid_request_error"


def test_retry__attempts_run_out_into_failed(
    pipeline: Pipeline, producer: Callable[[Pipeline], Producer], memory_api: MemoryBatchApi
) -> None:
    memory_api.respond = lambda c, p: _errored("api_error")
    [handle] = producer(pipeline).enqueue_many([PARAMS])
    for _ in range(pipeline.settings.max_attempts):
        to_sql_and_submit(pipeline)
        end_and_ingest(pipeline, memory_api)
    assert handle.status() == "failed"
    assert memory_api.create_calls == pipeline.settings.max_attempts


def test_retry__billing_error_pauses_submission_without_using_attempts(
    pipeline: Pipeline, producer: Callable[[Pipeline], Producer], memory_api: MemoryBatchApi
) -> None:
    memory_api.respond = _responder({1: [_errored("billing_error")]})
    [handle] = producer(pipeline).enqueue_many([PARAMS])
    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)

    assert handle.status() == "queued"
    assert to_sql_and_submit(pipeline) == []  # paused: nothing new is cut
    with pipeline.sessions.begin() as session:
        assert "billing_error" in (controls_sql.submission_paused(session) or "")
        assert session.scalar(select(Request.charged_attempts)) == 0
        controls_sql.resume_submission(session)
    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    assert handle.result(timeout=1).type == "succeeded"


def test_submit__429_backs_off_and_refusal_records_why(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    memory_api.refuse_next_creates += [
        CreateNotAccepted("HTTP 429", retry_after=30),
        CreateRefused("HTTP 400 invalid_request_error: bad"),
    ]
    [handle] = producer(pipeline).enqueue_many([PARAMS])
    [batch_id] = to_sql_and_submit(pipeline)
    assert _batch_state(pipeline, batch_id) == BatchState.PREPARED
    assert submit.submit_batch(pipeline, batch_id) == "not-ready"  # still backing off
    clock.advance(31)
    assert submit.submit_batch(pipeline, batch_id) == "refused"
    with pipeline.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and "invalid_request_error" in (batch.error or "")
    assert handle.status() == "failed"


def test_ingest__killed_midway_is_finished_by_another(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    pipeline.settings = _with(pipeline, ingest_chunk=2)
    handles = producer(pipeline).enqueue_many([PARAMS] * 7)
    [batch_id] = to_sql_and_submit(pipeline)
    memory_api.end_all()
    poll.poll_batch(pipeline, batch_id)

    real_results = memory_api.results

    def dies_after_two_chunks(remote_id: str) -> Any:
        class Dying:
            def __enter__(self) -> Any:
                self._cm = real_results(remote_id)
                lines = self._cm.__enter__()
                return (line for i, line in enumerate(lines) if i < 4 or _die())

            def __exit__(self, *exc: object) -> None:
                self._cm.__exit__(None, None, None)

        return Dying()

    memory_api.results = dies_after_two_chunks  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        ingest.ingest_batch(pipeline, batch_id)
    assert states(pipeline) == {"succeeded": 4, "in_batch": 3}
    assert ingest.ingest_batch(pipeline, batch_id) is None  # the dead worker's lease holds

    memory_api.results = real_results  # type: ignore[method-assign]
    clock.advance(pipeline.settings.ingest_lease_seconds + 1)
    report = ingest.ingest_batch(pipeline, batch_id)
    assert report is not None and report.new_results == 3
    assert {h.result(timeout=1).type for h in handles} == {"succeeded"}


def _die() -> bool:
    raise SystemExit("worker killed")


def _with(pipeline: Pipeline, **changes: Any) -> Any:

    return pipeline.settings.replace(**changes)


def test_assemble__concurrent_claimers_never_share_a_request(
    pipeline: Pipeline, producer: Callable[[Pipeline], Producer], memory_api: MemoryBatchApi
) -> None:
    pipeline.settings = _with(pipeline, max_batch_requests=7)
    producer(pipeline).enqueue_many([PARAMS] * 60)
    run_intake(pipeline, "c")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            barrier.wait()
            assemble.assemble_batches(pipeline, max_batches=20)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with pipeline.sessions() as session:
        sizes = session.scalars(select(Batch.request_count)).all()
        members = session.execute(
            select(Request.batch_id, func.count()).group_by(Request.batch_id)
        ).all()
    assert sum(sizes) == 60 and max(sizes) <= 7
    # Each request sits in exactly one batch, and every batch holds what it counts.
    assert sorted(n for _, n in members) == sorted(sizes)


def test_cancel__a_queued_request_is_canceled_and_never_sent(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
) -> None:
    from batchline.control import cancel_request

    keep, drop = producer(pipeline).enqueue_many([PARAMS, PARAMS])
    run_intake(pipeline, "c")
    assert cancel_request(drop.id, pipeline.settings)
    assert not cancel_request(drop.id, pipeline.settings)  # already final

    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    assert drop.result(timeout=1).type == "canceled"
    assert keep.result(timeout=1).type == "succeeded"
    [stored] = memory_api.batches.values()
    assert len(stored.requests) == 1


def test_intake__key_reused_after_its_redis_entry_expired_ends_canceled(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    redis_client: Any,
) -> None:
    from batchline.keys import RedisKeys

    make = producer(pipeline)
    first = make.enqueue(PARAMS, key="order-1")
    run_intake(pipeline, "c")
    redis_client.delete(RedisKeys().idempotency("order-1"))  # as if its TTL ran out
    again = make.enqueue(PARAMS, key="order-1")
    run_intake(pipeline, "c")

    assert again != first
    assert again.result(timeout=1).type == "canceled"
    with pipeline.sessions() as session:
        row = session.get(Request, again.id)
        assert row is not None and first.id in (row.last_error or "")
    assert first.status() == "queued"


def test_assemble__requests_with_different_betas_never_share_a_batch(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    memory_api: MemoryBatchApi,
    clock: Clock,
) -> None:
    plain = producer(pipeline).enqueue_many([PARAMS] * 2)
    # The same set in another order and with a repeat: one group, one header.
    beta = [
        producer(pipeline).enqueue(PARAMS, betas=["b-2025-01-01", "a-2025-01-01"]),
        producer(pipeline).enqueue(PARAMS, betas=["a-2025-01-01", "b-2025-01-01", "a-2025-01-01"]),
    ]
    plain.append(producer(pipeline).enqueue(PARAMS))

    made = to_sql_and_submit(pipeline)

    assert len(made) == 2
    assert sorted(memory_api.create_betas) == [[], ["a-2025-01-01", "b-2025-01-01"]]
    with pipeline.sessions() as session:
        rows = session.execute(select(Request.id, Request.batch_id, Request.betas)).all()
    by_id = {request_id: (batch_id, betas) for request_id, batch_id, betas in rows}
    assert {by_id[h.id] for h in beta} == {(by_id[beta[0].id][0], "a-2025-01-01,b-2025-01-01")}
    assert {by_id[h.id] for h in plain} == {(by_id[plain[0].id][0], None)}
    clock.advance(5)
    end_and_ingest(pipeline, memory_api)
    assert {h.result(timeout=1).type for h in plain + beta} == {"succeeded"}


def test_poll__a_new_batch_is_looked_at_soon_then_less_often(
    pipeline: Pipeline,
    producer: Callable[[Pipeline], Producer],
    clock: Clock,
) -> None:
    interval = 30.0
    pipeline = dataclasses.replace(
        pipeline, settings=pipeline.settings.replace(poll_interval_seconds=interval)
    )
    producer(pipeline).enqueue_many([PARAMS])
    [batch_id] = to_sql_and_submit(pipeline)
    gaps = []
    for _ in range(12):
        with pipeline.sessions() as session:
            due = session.scalar(select(Batch.next_poll_at).where(Batch.id == batch_id))
        assert due is not None
        gaps.append((due - clock.now).total_seconds())
        clock.now = due
        assert poll.lease_due_polls(pipeline) == [batch_id]
        assert poll.poll_batch(pipeline, batch_id) is False
    # One second after creation, then gaps of half the batch's age, up to the interval.
    assert gaps[:5] == [1.0, 1.0, 1.0, 1.5, 2.25]
    assert gaps == sorted(gaps) and gaps[-1] == interval
