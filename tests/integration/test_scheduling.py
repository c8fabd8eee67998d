"""Priorities, fair shares and the in-flight limit, through real SQL and Redis.

The Batch API is the in-memory fake here; tests/acceptance/test_capacity_service.py
drives the same rules through the running service and the emulator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from batchline.adapters.batch_api import CreateNotAccepted
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.domain.retry import Failure
from batchline.models import Request
from batchline.producer import Item, Producer
from batchline.services import assemble, capacity, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.conftest import Clock
from tests.integration.test_pipeline import PARAMS, end_and_ingest

pytestmark = pytest.mark.integration


@pytest.fixture
def producers() -> Iterator[list[Producer]]:
    made: list[Producer] = []
    yield made
    for p in made:
        p.close()


def _enqueue(
    pipeline: Pipeline, made: list[Producer], items: list[Item], clock: Clock | None = None
) -> None:
    """Enqueue and take into SQL (a second later, so intake times differ)."""
    made.append(Producer(pipeline.settings))
    made[-1].enqueue_many(items)
    run_intake(pipeline, "test-consumer")
    if clock is not None:
        clock.advance(1)


def _members(pipeline: Pipeline, batch_id: int, column: Any) -> Counter[Any]:
    with pipeline.sessions() as session:
        return Counter(session.scalars(select(column).where(Request.batch_id == batch_id)))


def _tenant(name: str, n: int, priority: int | None = None) -> list[Item]:
    return [Item(PARAMS, tags={"tenant": name}, priority=priority) for _ in range(n)]


def test_assemble__higher_priority_goes_first_then_oldest(
    pipeline: Pipeline, producers: list[Producer], clock: Clock
) -> None:
    pipeline.settings = pipeline.settings.replace(max_batch_requests=4)
    _enqueue(pipeline, producers, _tenant("x", 3, priority=-1), clock)
    _enqueue(pipeline, producers, _tenant("x", 3), clock)
    _enqueue(pipeline, producers, _tenant("x", 2, priority=4), clock)

    first, second = assemble.assemble_batches(pipeline)[:2]

    # FIFO would fill the first batch with the three oldest (priority -1).
    assert _members(pipeline, first, Request.priority) == {4: 2, 0: 2}
    assert _members(pipeline, second, Request.priority) == {0: 1, -1: 3}


def test_assemble__a_high_priority_request_cuts_the_batch_early(
    pipeline: Pipeline, producers: list[Producer], clock: Clock
) -> None:
    pipeline.settings = pipeline.settings.replace(max_wait_seconds=60, priority_max_wait="3:5")
    _enqueue(pipeline, producers, _tenant("x", 2))
    clock.advance(10)
    assert assemble.assemble_batches(pipeline) == []  # 10 s of 60: not yet
    _enqueue(pipeline, producers, _tenant("x", 1, priority=3))
    clock.advance(5)

    [batch_id] = assemble.assemble_batches(pipeline)

    assert _members(pipeline, batch_id, Request.priority) == {3: 1, 0: 2}


def test_assemble__shares_split_a_batch_by_weight_not_by_age(
    pipeline: Pipeline, producers: list[Producer], clock: Clock
) -> None:
    pipeline.settings = pipeline.settings.replace(
        max_batch_requests=10, share_tag="tenant", share_weights="small:2"
    )
    _enqueue(pipeline, producers, _tenant("flood", 50), clock)
    _enqueue(pipeline, producers, _tenant("small", 20) + _tenant("other", 2), clock)

    batch_id = assemble.assemble_batches(pipeline, max_batches=1)[0]

    # Without shares the ten oldest (all "flood") would go.
    assert _members(pipeline, batch_id, Request.share_key) == {"small": 5, "flood": 3, "other": 2}


def test_assemble__a_flood_cannot_take_the_in_flight_room_a_newcomer_needs(
    pipeline: Pipeline, producers: list[Producer], memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline.settings = pipeline.settings.replace(
        max_batch_requests=1000, max_in_flight_requests=40, share_tag="tenant"
    )
    _enqueue(pipeline, producers, _tenant("flood", 500) + _tenant("a", 2), clock)
    made = assemble.assemble_batches(pipeline)
    assert sum(_members(pipeline, b, Request.share_key)["flood"] for b in made) == 20
    _enqueue(pipeline, producers, _tenant("a", 5) + _tenant("b", 5), clock)

    [batch_id] = assemble.assemble_batches(pipeline)

    # The flood holds its half of the limit; the newcomers' work goes in the next cut.
    assert _members(pipeline, batch_id, Request.share_key) == {"a": 5, "b": 5}


def test_capacity__assembly_and_submission_stay_under_the_limit(
    pipeline: Pipeline, producers: list[Producer], memory_api: MemoryBatchApi, clock: Clock
) -> None:
    pipeline.settings = pipeline.settings.replace(max_in_flight_requests=5)
    _enqueue(pipeline, producers, _tenant("x", 12), clock)

    [batch_id] = assemble.assemble_batches(pipeline)
    assert submit.submit_batch(pipeline, batch_id) == "submitted"
    assert assemble.assemble_batches(pipeline) == []  # no room: nothing more is cut
    with pipeline.sessions() as session:
        use = capacity.capacity_use(session, 5)
    assert (use.in_flight, use.effective_limit) == (5, 5)

    end_and_ingest(pipeline, memory_api)
    assert len(assemble.assemble_batches(pipeline)) == 1
    assert memory_api.create_calls == 1


def test_capacity__a_batch_over_the_room_is_not_created(
    pipeline: Pipeline, producers: list[Producer], memory_api: MemoryBatchApi, clock: Clock
) -> None:
    _enqueue(pipeline, producers, _tenant("x", 8), clock)
    [batch_id] = assemble.assemble_batches(pipeline)  # cut while no limit was set
    pipeline.settings = pipeline.settings.replace(max_in_flight_requests=5)

    assert submit.submit_batch(pipeline, batch_id) == "capacity"
    assert memory_api.create_calls == 0


def _second_of_two_batches(pipeline: Pipeline, producers: list[Producer], clock: Clock) -> int:
    """Two batches of 4 under a limit of 100: the first created, the second's id."""
    pipeline.settings = pipeline.settings.replace(max_in_flight_requests=100, max_batch_requests=4)
    _enqueue(pipeline, producers, _tenant("x", 8), clock)
    first, second = assemble.assemble_batches(pipeline)
    assert submit.submit_batch(pipeline, first) == "submitted"
    return second


def test_capacity__a_batch_that_must_wait_for_room_is_not_handed_out_every_tick(
    pipeline: Pipeline, producers: list[Producer], memory_api: MemoryBatchApi, clock: Clock
) -> None:
    second = _second_of_two_batches(pipeline, producers, clock)
    pipeline.settings = pipeline.settings.replace(max_in_flight_requests=6)  # room for 2, not 4

    assert submit.submit_ready_batches(pipeline) == []
    end_and_ingest(pipeline, memory_api)  # the first batch's 4 leave the API
    assert submit.submit_ready_batches(pipeline) == [second]


def test_capacity__a_429_lowers_the_limit_until_a_create_succeeds(
    pipeline: Pipeline, producers: list[Producer], memory_api: MemoryBatchApi, clock: Clock
) -> None:
    second = _second_of_two_batches(pipeline, producers, clock)
    memory_api.refuse_next_creates.append(
        CreateNotAccepted("HTTP 429 queue full", retry_after=1, kind=Failure.CREATE_RATE_LIMITED)
    )

    assert submit.submit_batch(pipeline, second) == "not-accepted"
    with pipeline.sessions() as session:
        lowered = capacity.capacity_use(session, 100)
    clock.advance(5)
    assert submit.submit_batch(pipeline, second) == "capacity"  # 4 in flight of 4
    end_and_ingest(pipeline, memory_api)
    assert submit.submit_batch(pipeline, second) == "submitted"
    with pipeline.sessions() as session:
        recovered = capacity.capacity_use(session, 100)

    assert (lowered.effective_limit, lowered.effective) == (4, 4)
    assert (recovered.effective_limit, recovered.effective) == (100, None)
    assert memory_api.create_calls == 3
