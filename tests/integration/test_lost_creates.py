"""Lost creates settled on evidence, over real SQL (SQLite and PostgreSQL).

The in-memory Batch API loses answers after or before making the batch, and
plays the other clients of the same key; each step is driven by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, select

from batchline.adapters.batch_api import CreateOutcomeUnknown
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import reconcile as reconcile_sql
from batchline.adapters.sql import submit as submit_sql
from batchline.domain.states import BatchState
from batchline.models import Batch, Request, Result
from batchline.producer import Producer
from batchline.services import assemble, reconcile, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from harness.create_faults import (
    other_deployment_custom_ids,
    plain_custom_ids,
    unnamed_batchline_custom_ids,
)
from tests.conftest import Clock
from tests.integration.test_pipeline import end_and_ingest, states, to_sql_and_submit

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def small_batches(pipeline: Pipeline) -> Iterator[Pipeline]:
    pipeline.settings = pipeline.settings.replace(max_batch_requests=3)
    with Producer(pipeline.settings) as producer:
        pipeline.producer = producer  # type: ignore[attr-defined]
        yield pipeline


def _enqueue(pipeline: Pipeline, n: int) -> None:
    pipeline.producer.enqueue_many([PARAMS] * n)  # type: ignore[attr-defined]


def _settle_time(pipeline: Pipeline) -> float:
    s = pipeline.settings
    return 2 * (s.create_timeout_seconds + s.clock_skew_seconds) + 1


def _requests(pipeline: Pipeline) -> list[tuple[str, int, int]]:
    with pipeline.sessions() as session:
        rows = session.execute(select(Request.state, Request.attempts, Request.charged_attempts))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _foreign_create(api: MemoryBatchApi, custom_ids: list[str]) -> str:
    body = {"requests": [{"custom_id": c, "params": PARAMS} for c in custom_ids]}
    return api.create([orjson.dumps(body)]).id


def test_lost_creates__equal_sizes_lost_together_each_claim_their_own(
    small_batches: Pipeline, memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline = small_batches
    _enqueue(pipeline, 12)
    memory_api.lose_next_creates = 4
    intents = to_sql_and_submit(pipeline)
    assert len(intents) == 4

    clock.advance(_settle_time(pipeline) / 2)
    assert len(reconcile.reconcile(pipeline).tracked) == 4
    end_and_ingest(pipeline, memory_api)

    assert sorted(reconcile.reconcile(pipeline).released) == intents
    assert states(pipeline) == {"succeeded": 12}
    # One attempt each, charged once: nothing sent twice, nothing charged unsent.
    assert set(_requests(pipeline)) == {("succeeded", 1, 1)}
    assert memory_api.create_calls == 4 and len(memory_api.batches) == 4
    with pipeline.sessions() as session:
        assert session.scalar(select(func.count()).where(Result.duplicate.is_(True))) == 0


def test_lost_creates__lost_before_and_after_of_one_size_fail_nothing_unsent(
    small_batches: Pipeline, memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline = small_batches
    _enqueue(pipeline, 6)
    memory_api.refuse_next_creates.append(CreateOutcomeUnknown("HTTP 500 before anything"))
    memory_api.lose_next_creates = 1  # the second create: made, answer lost
    before, after = to_sql_and_submit(pipeline)

    clock.advance(_settle_time(pipeline) / 2)
    report = reconcile.reconcile(pipeline)
    # The one remote batch is tracked, adopted by nobody on its size alone.
    assert len(report.tracked) == 1 and report.released == []
    end_and_ingest(pipeline, memory_api)
    assert states(pipeline) == {"succeeded": 3, "in_batch": 3}

    clock.advance(_settle_time(pipeline))
    assert sorted(reconcile.reconcile(pipeline).released) == [before, after]
    # The lost-before intent's requests go round again, uncharged.
    assert sorted(_requests(pipeline)) == [("queued", 1, 0)] * 3 + [("succeeded", 1, 1)] * 3
    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    assert states(pipeline) == {"succeeded": 6}


@pytest.mark.parametrize(
    "custom_ids",
    [plain_custom_ids, other_deployment_custom_ids, unnamed_batchline_custom_ids],
    ids=["plain-script", "other-deployment", "unnamed-batchline"],
)
def test_lost_creates__a_foreign_batch_of_the_same_size_settles_nothing_of_ours(
    small_batches: Pipeline,
    memory_api: MemoryBatchApi,
    clock: Clock,
    custom_ids: Callable[[int], list[str]],
) -> None:
    pipeline = small_batches
    _enqueue(pipeline, 3)
    memory_api.refuse_next_creates.append(CreateOutcomeUnknown("HTTP 500 before anything"))
    [intent] = to_sql_and_submit(pipeline)
    clock.advance(1)
    foreign = _foreign_create(memory_api, custom_ids(3))

    clock.advance(_settle_time(pipeline) / 2)
    assert reconcile.reconcile(pipeline).tracked == [foreign]
    end_and_ingest(pipeline, memory_api)

    with pipeline.sessions() as session:
        found = session.scalar(select(Batch).where(Batch.remote_id == foreign))
        assert found is not None and (found.error or "").startswith("foreign: 3 results")
        assert session.scalar(select(func.count()).select_from(Result)) == 0
    assert states(pipeline) == {"in_batch": 3}

    clock.advance(_settle_time(pipeline))
    assert reconcile.reconcile(pipeline).released == [intent]
    assert set(_requests(pipeline)) == {("queued", 1, 0)}
    to_sql_and_submit(pipeline)
    end_and_ingest(pipeline, memory_api)
    assert states(pipeline) == {"succeeded": 3}


def test_lost_creates__found_in_the_apis_clock_when_ours_runs_ten_minutes_ahead(
    small_batches: Pipeline, memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline = small_batches
    memory_api.now = lambda: clock() - timedelta(minutes=10)
    _enqueue(pipeline, 3)
    memory_api.lose_next_creates = 1
    [intent] = to_sql_and_submit(pipeline)

    clock.advance(_settle_time(pipeline) / 2)
    report = reconcile.reconcile(pipeline)
    assert report.tracked == list(memory_api.batches)
    assert report.api_offset == timedelta(minutes=-10)
    end_and_ingest(pipeline, memory_api)
    clock.advance(_settle_time(pipeline))

    assert reconcile.reconcile(pipeline).released == [intent]
    assert set(_requests(pipeline)) == {("succeeded", 1, 1)}
    assert memory_api.create_calls == 1


def test_lost_creates__batches_of_other_sizes_are_left_alone(
    small_batches: Pipeline, memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline = small_batches
    _enqueue(pipeline, 3)
    memory_api.lose_next_creates = 1
    to_sql_and_submit(pipeline)
    _foreign_create(memory_api, plain_custom_ids(5))

    clock.advance(_settle_time(pipeline) / 2)
    report = reconcile.reconcile(pipeline)
    assert len(report.tracked) == 1 and report.other_sizes == 1


def test_deployment__named_once_in_the_database_unless_set(
    pipeline: Pipeline, clock: Clock
) -> None:
    with pipeline.sessions.begin() as session:
        first = controls_sql.deployment_name(session, "", clock())
    with pipeline.sessions.begin() as session:
        assert controls_sql.deployment_name(session, "", clock()) == first
        assert controls_sql.deployment_name(session, "prod", clock()) == "prod"


def test_deployment__every_custom_id_sent_carries_the_name(
    small_batches: Pipeline, memory_api: MemoryBatchApi
) -> None:
    pipeline = small_batches
    pipeline.settings = pipeline.settings.replace(deployment="blue")
    _enqueue(pipeline, 3)
    to_sql_and_submit(pipeline)
    [stored] = memory_api.batches.values()
    assert all(c.startswith("blblue_") for c, _ in stored.requests)
    with pipeline.sessions() as session:
        assert session.scalar(select(Batch.state)) == BatchState.SUBMITTED


def test_lost_creates__a_batch_found_before_its_answer_takes_its_requests(
    small_batches: Pipeline, memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline = small_batches
    _enqueue(pipeline, 3)
    run_intake(pipeline, "c")
    [intent] = assemble.assemble_batches(pipeline)
    with pipeline.sessions.begin() as session:
        assert submit_sql.begin_submission(session, intent, clock())
        deployment = controls_sql.deployment_name(session, "", clock())
    with pipeline.engine.connect() as conn:
        remote = memory_api.create(submit_sql.iter_batch_body(conn, intent, deployment))
    # The reconciler tracks the batch, and reads it, while the create is still SUBMITTING...
    with pipeline.sessions.begin() as session:
        reconcile_sql.insert_stray_batch(session, remote, clock())
    end_and_ingest(pipeline, memory_api)
    assert set(_requests(pipeline)) == {("succeeded", 1, 1)}

    # ...and the answer, arriving after, defers to it.
    assert submit._created(pipeline, intent, remote) == "tracked"
    assert reconcile.reconcile(pipeline).released == [intent]


def test_deployment__renamed_while_a_planned_batch_runs_still_settles_it(
    small_batches: Pipeline, memory_api: MemoryBatchApi
) -> None:
    pipeline = small_batches
    pipeline.settings = pipeline.settings.replace(deployment="blue")
    _enqueue(pipeline, 3)
    to_sql_and_submit(pipeline)
    pipeline.settings = pipeline.settings.replace(deployment="green")
    end_and_ingest(pipeline, memory_api)
    assert set(_requests(pipeline)) == {("succeeded", 1, 1)}
