"""The pipeline's rarer moves, each made once over real SQL and Redis: a create
refused for billing, a late create answer adopted, an operator's retry.

With tests/integration/test_pipeline.py and the Hypothesis state machine these
make every move of the state table (tests/integration/test_state_moves.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from batchline.adapters import maintenance
from batchline.adapters.batch_api import CreateRefused
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import submit as submit_sql
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, Request
from batchline.producer import Producer
from batchline.services import assemble, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.conftest import Clock
from tests.integration.test_pipeline import PARAMS, end_and_ingest, to_sql_and_submit

pytestmark = pytest.mark.integration


@pytest.fixture
def producer(pipeline: Pipeline) -> Iterator[Producer]:
    made = Producer(pipeline.settings)
    yield made
    made.close()


def _batch(pipeline: Pipeline, batch_id: int) -> tuple[str, str]:
    with pipeline.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.state, batch.origin


def _request_states(pipeline: Pipeline) -> list[str]:
    with pipeline.sessions() as session:
        return list(session.scalars(select(Request.state)))


def test_submit__create_refused_for_billing_releases_its_requests_and_pauses(
    pipeline: Pipeline, producer: Producer, memory_api: MemoryBatchApi
) -> None:
    memory_api.refuse_next_creates.append(CreateRefused("HTTP 400 billing_error", pause=True))
    [handle] = producer.enqueue_many([PARAMS])
    [batch_id] = to_sql_and_submit(pipeline)
    assert _batch(pipeline, batch_id)[0] == BatchState.RELEASED
    assert handle.status() == "queued"
    with pipeline.sessions() as session:
        assert controls_sql.submission_paused(session)


def test_submit__answer_after_the_reconciler_gave_up_adopts_its_batch(
    pipeline: Pipeline, producer: Producer, memory_api: MemoryBatchApi, clock: Clock
) -> None:
    [handle] = producer.enqueue_many([PARAMS])
    run_intake(pipeline, "test-consumer")
    [intent] = assemble.assemble_batches(pipeline)
    with pipeline.sessions.begin() as session:
        assert submit_sql.begin_submission(session, intent, clock())
        deployment = controls_sql.deployment_name(session, "", clock())
    with pipeline.engine.connect() as conn:
        remote = memory_api.create(submit_sql.iter_batch_body(conn, intent, deployment))
    with pipeline.sessions.begin() as session:  # the reconciler: this create timed out
        assert submit_sql.record_outcome_unknown(session, intent, "timed out", clock())
    assert submit._created(pipeline, intent, remote) == "submitted"
    assert _batch(pipeline, intent) == (BatchState.SUBMITTED, "adopted")
    end_and_ingest(pipeline, memory_api)
    assert handle.result(timeout=1).type == "succeeded"


@pytest.mark.parametrize(
    ("answer", "final"),
    [
        ({"type": "expired"}, RequestState.EXPIRED),
        (
            {"type": "errored", "error": {"type": "error", "error": {"type": "api_error"}}},
            RequestState.FAILED,
        ),
    ],
)
def test_retry__an_operator_sends_a_finished_request_round_again(
    pipeline: Pipeline,
    producer: Producer,
    memory_api: MemoryBatchApi,
    answer: dict[str, Any],
    final: RequestState,
) -> None:
    memory_api.respond = lambda custom_id, params: answer
    producer.enqueue_many([PARAMS])
    for _ in range(pipeline.settings.max_attempts):
        [batch_id] = to_sql_and_submit(pipeline)
        end_and_ingest(pipeline, memory_api)
    assert _request_states(pipeline) == [final]
    with pipeline.sessions.begin() as session:
        assert maintenance.requeue_failed(session, batch_id, pipeline.clock()) == 1
    assert _request_states(pipeline) == [RequestState.QUEUED]
