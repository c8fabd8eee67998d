"""Reservations against the daily spend cap, on both backends: two submitters at
once never share the room, and a create that did not happen frees it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from batchline import ledger
from batchline.adapters.batch_api import CreateNotAccepted, CreateRefused
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.sql import submit as submit_sql
from batchline.models import Batch
from batchline.producer import Producer
from batchline.services import assemble, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake

pytestmark = pytest.mark.integration

PARAMS = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 500,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def two_batches(pipeline: Pipeline) -> Iterator[tuple[Pipeline, list[int], Decimal]]:
    """Two prepared one-request batches, and a cap with room for one worst case."""
    pipeline.settings = pipeline.settings.replace(max_batch_requests=1)
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([PARAMS, PARAMS])
    run_intake(pipeline, "t")
    made = assemble.assemble_batches(pipeline)
    with pipeline.engine.connect() as conn:
        worst = ledger.batch_worst_case(conn, made[0])
    assert isinstance(worst, Decimal) and len(made) == 2
    pipeline.settings = pipeline.settings.replace(daily_spend_cap_usd=float(worst * 3 / 2))
    yield pipeline, made, worst


def _state(pipeline: Pipeline, batch_id: int) -> str:
    with pipeline.sessions() as session:
        return str(session.scalar(select(Batch.state).where(Batch.id == batch_id)))


def test_reserve__two_submitters_at_once_never_share_the_room(
    two_batches: tuple[Pipeline, list[int], Decimal],
) -> None:
    pipeline, (a, b), worst = two_batches
    cap, now = pipeline.settings.daily_spend_cap_usd, datetime.now(UTC)
    outcome: list[str | None] = []

    def second_submitter() -> None:
        with pipeline.sessions.begin() as session:
            why = ledger.reserve(session, b, worst, cap, now)
            if why is None:
                submit_sql.begin_submission(session, b, now)
            outcome.append(why)

    with pipeline.sessions.begin() as session:
        assert ledger.reserve(session, a, worst, cap, now) is None
        assert submit_sql.begin_submission(session, a, now)
        thread = threading.Thread(target=second_submitter)
        thread.start()
        # The second submitter runs while the first reservation is not yet
        # committed: without the cap's lock it would read the room as free.
        time.sleep(0.5)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert outcome and outcome[0] is not None and "waits for the daily spend cap" in outcome[0]
    assert (_state(pipeline, a), _state(pipeline, b)) == ("submitting", "prepared")


@pytest.mark.parametrize(
    "failure",
    [CreateNotAccepted("overloaded", retry_after=0), CreateRefused("invalid request", False)],
)
def test_reserve__a_create_that_did_not_happen_frees_the_room(
    two_batches: tuple[Pipeline, list[int], Decimal],
    memory_api: MemoryBatchApi,
    failure: Exception,
) -> None:
    pipeline, (a, b), worst = two_batches
    cap = pipeline.settings.daily_spend_cap_usd
    memory_api.refuse_next_creates.append(failure)
    assert submit.submit_batch(pipeline, a) in ("not-accepted", "refused")
    with pipeline.sessions() as session:
        assert ledger.cap_use(session, cap, datetime.now(UTC)).reserved == 0
    assert submit.submit_batch(pipeline, b) == "submitted"
    with pipeline.sessions() as session:
        assert ledger.cap_use(session, cap, datetime.now(UTC)).reserved == worst
