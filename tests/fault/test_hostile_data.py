"""Bad data from outside is that request's failure (or the batch's retry), never a crash loop.

Given the real services and SDK adapter on PostgreSQL and Redis, talking to
the emulator through a stub that spoils one answer; when a results line is
not JSON, names an unknown result type or a message missing its fields, or a
retrieve / results call answers HTTP 200 with a body that is not JSON; then
the task's service call returns (or raises only what the task maps to "next
sweep retries"), the damage is recorded on the request it concerns, and the
next sweep finishes the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest
import redis
from sqlalchemy import select, update

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.emulator import EmulatorServer, FaultConfig
from batchline.models import Batch, Request, Result
from batchline.producer import Producer
from batchline.services import ingest, poll
from batchline.services.context import Pipeline
from batchline.tasks import _left_for_next_sweep
from harness.emulated import ShiftedClock, final_states, run_once
from harness.hostile_api import HostileApi
from tests.conftest import BuildPipeline, make_settings

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.emulator]

PARAMS = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def hostile(
    pg_db: str,
    redis_url: str,
    redis_client: redis.Redis,
    emulator_factory: Callable[..., EmulatorServer],
    build_test_pipeline: BuildPipeline,
) -> Iterator[tuple[Pipeline, HostileApi, EmulatorServer]]:
    emulator = emulator_factory(processing_seconds=0.0)
    stub = HostileApi(emulator.base_url).start()
    settings = make_settings(pg_db, redis_url, create_timeout_seconds=5, max_attempts=3)
    api = AnthropicBatchApi("sk-ant-test", stub.base_url, create_timeout=5, max_retries=0)
    pipeline = build_test_pipeline(
        settings, api=api, redis_client=redis_client, clock=ShiftedClock()
    )
    try:
        yield pipeline, stub, emulator
    finally:
        api.close()
        stub.stop()


def sweep(pipeline: Pipeline) -> None:
    """One beat round as the tasks run it: each call wrapped as its task wraps it."""
    _left_for_next_sweep(run_once)(pipeline)
    with pipeline.sessions() as session:
        submitted = session.scalars(
            select(Request.batch_id).where(Request.state == "in_batch").distinct()
        ).all()
    for batch_id in submitted:
        if batch_id is not None:
            _left_for_next_sweep(poll.poll_batch)(pipeline, batch_id)
    for batch_id in poll.batches_to_ingest(pipeline):
        _left_for_next_sweep(ingest.ingest_batch)(pipeline, batch_id)


def spoil_line(
    index: int, change: Callable[[dict[str, object]], bytes]
) -> Callable[[bytes], bytes]:
    """Rewrite the results line of the request enqueued `index`-th (by its custom_id order)."""

    def rewrite(body: bytes) -> bytes:
        lines = [line for line in body.split(b"\n") if line.strip()]
        lines.sort(key=lambda line: orjson.loads(line)["custom_id"])
        doc = orjson.loads(lines[index])
        lines[index] = change(doc)
        return b"\n".join(lines) + b"\n"

    return rewrite


def _garble(doc: dict[str, object]) -> bytes:
    return orjson.dumps(doc)[:30]


def _unknown_type(doc: dict[str, object]) -> bytes:
    doc["result"] = {"type": "teleported", "where": "mars"}
    return orjson.dumps(doc)


def _missing_fields(doc: dict[str, object]) -> bytes:
    result = doc["result"]
    assert isinstance(result, dict)
    del result["message"]["content"]
    return orjson.dumps(doc)


def states_by_id(pipeline: Pipeline) -> dict[str, tuple[str, str | None]]:
    with pipeline.sessions() as session:
        rows = session.execute(select(Request.id, Request.state, Request.last_error))
        return {i: (s, e) for i, s, e in rows}


def run_until_final(pipeline: Pipeline, rounds: int = 8) -> None:
    for _ in range(rounds):
        sweep(pipeline)
        if set(final_states(pipeline)) <= {"succeeded", "failed", "expired", "canceled"}:
            return
    raise AssertionError(f"not final after {rounds} sweeps: {final_states(pipeline)}")


@pytest.mark.parametrize(
    ("change", "state", "error"),
    [
        pytest.param(
            _unknown_type, "failed", "unknown result type 'teleported'", id="unknown-type"
        ),
        pytest.param(_missing_fields, "failed", "message missing ['content']", id="missing-fields"),
        pytest.param(_garble, "succeeded", None, id="malformed-line"),
    ],
)
def test_results__one_bad_line_is_that_requests_failure_and_the_rest_succeed(
    hostile: tuple[Pipeline, HostileApi, EmulatorServer],
    change: Callable[[dict[str, object]], bytes],
    state: str,
    error: str | None,
) -> None:
    pipeline, stub, _ = hostile
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * 4)]
    stub.spoil_results(spoil_line(1, change))

    sweep(pipeline)
    run_until_final(pipeline)

    assert stub.spoiled == 1
    states = states_by_id(pipeline)
    victim = sorted(ids)[1]
    assert states[victim][0] == state
    if error is not None:
        assert error in (states[victim][1] or "")
    assert {states[i][0] for i in ids if i != victim} == {"succeeded"}
    with pipeline.sessions() as session:
        kinds = session.scalars(select(Result.result_type).where(Result.request_id == victim))
        assert ("malformed" in set(kinds)) == (state == "failed")


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"", b'{"id": 5}', b"null"],
    ids=["html", "empty", "wrong-shape", "null"],
)
def test_retrieve__http_200_not_a_batch_is_retried_next_sweep(
    hostile: tuple[Pipeline, HostileApi, EmulatorServer], body: bytes
) -> None:
    pipeline, stub, _ = hostile
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([PARAMS] * 2)
    _left_for_next_sweep(run_once)(pipeline)
    stub.spoil_retrieve(body, times=2)

    sweep(pipeline)
    run_until_final(pipeline)

    assert stub.spoiled == 2
    assert final_states(pipeline) == {"succeeded": 2}


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"not json at all\n\x00\xff\n"],
    ids=["html", "binary"],
)
def test_results__http_200_non_json_body_sends_the_requests_round_again(
    hostile: tuple[Pipeline, HostileApi, EmulatorServer], body: bytes
) -> None:
    pipeline, stub, _ = hostile
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * 3)]
    stub.spoil_results(lambda _: body)

    sweep(pipeline)
    run_until_final(pipeline)

    assert stub.spoiled == 1
    states = states_by_id(pipeline)
    assert {states[i][0] for i in ids} == {"succeeded"}


def test_results__stream_cut_midway_task_returns_and_next_sweep_ingests(
    hostile: tuple[Pipeline, HostileApi, EmulatorServer],
) -> None:
    pipeline, _, emulator = hostile
    emulator.set_faults(FaultConfig(results_cut_after_bytes=1500))
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([PARAMS] * 5)
    _left_for_next_sweep(run_once)(pipeline)
    with pipeline.sessions() as session:
        [batch_id] = session.scalars(select(Request.batch_id).distinct()).all()
    assert batch_id is not None
    assert _left_for_next_sweep(poll.poll_batch)(pipeline, batch_id)

    assert _left_for_next_sweep(ingest.ingest_batch)(pipeline, batch_id) is None
    emulator.set_faults(FaultConfig())
    with pipeline.sessions.begin() as session:
        # The lease the cut download held lapses (here: at once).
        session.execute(update(Batch).values(lease_until=None))
    run_until_final(pipeline)

    assert final_states(pipeline) == {"succeeded": 5}
