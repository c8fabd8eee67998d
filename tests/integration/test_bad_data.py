"""One bad row never holds back its neighbours, over real SQL and Redis.

Given the pipeline on SQLite and PostgreSQL with the in-memory Batch API; when
a results line names an unknown request, or the database refuses one result or
one request's row; then that one is counted, failed or dead-lettered with the
reason, and every other row of the chunk is stored and settled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import select

from batchline.adapters import queries
from batchline.adapters.memory_api import MemoryBatchApi, succeed
from batchline.domain.custom_ids import new_request_id
from batchline.models import Batch, Request, Result
from batchline.producer import Producer
from batchline.services import assemble, ingest, intake, poll, submit
from batchline.services.context import Pipeline
from harness.poison import PARAMS, dead_letters, failing_rows

pytestmark = pytest.mark.integration


def submit_all(pipeline: Pipeline, count: int) -> list[str]:
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * count)]
    intake.run_intake(pipeline, "t")
    for batch_id in assemble.assemble_batches(pipeline):
        submit.submit_batch(pipeline, batch_id)
    return ids


def end_and_ingest(pipeline: Pipeline, api: MemoryBatchApi) -> list[ingest.IngestReport]:
    api.end_all()
    with pipeline.sessions() as session:
        batch_ids = list(session.scalars(select(Batch.id)))
    for batch_id in batch_ids:
        poll.poll_batch(pipeline, batch_id)
    reports = [ingest.ingest_batch(pipeline, b) for b in poll.batches_to_ingest(pipeline)]
    return [r for r in reports if r is not None]


def request_states(pipeline: Pipeline) -> dict[str, tuple[str, str | None]]:
    with pipeline.sessions() as session:
        rows = session.execute(select(Request.id, Request.state, Request.last_error))
        return {i: (s, e) for i, s, e in rows}


def test_ingest__a_line_naming_an_unknown_request_is_counted_and_skipped(
    pipeline: Pipeline, memory_api: MemoryBatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = submit_all(pipeline, 3)
    plain = memory_api.results
    stray = f"bl{new_request_id()}-1"

    @contextmanager
    def with_stray_line(remote_id: str) -> Iterator[Iterator[bytes]]:
        with plain(remote_id) as lines:
            extra = orjson.dumps({"custom_id": stray, "result": succeed(stray, PARAMS)})
            yield iter([*lines, extra + b"\n"])

    monkeypatch.setattr(memory_api, "results", with_stray_line)

    [report] = end_and_ingest(pipeline, memory_api)

    assert report.unknown_requests == 1
    assert {s for s, _ in request_states(pipeline).values()} == {"succeeded"}
    assert set(request_states(pipeline)) == set(ids)
    with pipeline.sessions() as session:
        assert set(session.scalars(select(Batch.state))) == {"ingested"}
        kept = session.scalar(select(Result.request_id).where(Result.custom_id == stray))
        assert kept is None
        assert queries.bad_results(session)["unknown_request"] == 1


def test_ingest__a_result_the_database_refuses_fails_its_request_alone(
    pipeline: Pipeline, memory_api: MemoryBatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pipeline.engine.dialect.name != "postgresql":
        pytest.skip("SQLite text holds U+0000: nothing to refuse")
    ids = submit_all(pipeline, 6)
    victim = sorted(ids)[3]
    plain_row = ingest._result_row

    def with_nul(*args: Any) -> dict[str, Any]:
        row = plain_row(*args)
        if row["request_id"] == victim and row["result_type"] == "succeeded":
            row["model"] = "claude\x00"  # PostgreSQL text cannot hold it
        return row

    monkeypatch.setattr(ingest, "_result_row", with_nul)

    [report] = end_and_ingest(pipeline, memory_api)

    found = request_states(pipeline)
    assert found[victim][0] == "failed"
    assert "the database refused this result" in (found[victim][1] or "")
    assert {found[i][0] for i in ids if i != victim} == {"succeeded"}
    assert report.new_results == 6
    with pipeline.sessions() as session:
        assert queries.bad_results(session).get("result_refused") == 1


def test_intake__a_request_the_database_refuses_is_dead_lettered_alone(
    pipeline: Pipeline, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pipeline.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores a string of any length: nothing to refuse")
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * 10)]
    victim = ids[6]
    plain_row = intake.request_row

    def too_long(entry: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        row = plain_row(entry, *args, **kwargs)
        if row["id"] == victim:
            row["model"] = "m" * 300  # wider than the column
        return row

    monkeypatch.setattr(intake, "request_row", too_long)

    moved = intake.run_intake(pipeline, "t")

    assert moved == 9
    assert set(request_states(pipeline)) == set(ids) - {victim}
    [letter] = dead_letters(redis_client)
    assert letter[b"id"] == victim.encode()
    assert b"refused by the database" in letter[b"reason"]
    assert pipeline.intake.depth() == 0


def _reclaiming_at_once(pipeline: Pipeline) -> Pipeline:
    """The pipeline with a reclaim time already passed by what intake left pending."""
    fixed = replace(pipeline, settings=pipeline.settings.replace(intake_reclaim_seconds=0.05))
    time.sleep(0.1)
    return fixed


def test_intake__a_request_that_makes_no_row_among_good_ones_is_dead_lettered_alone(
    pipeline: Pipeline, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A poison entry enqueue's checks did not foresee: its row cannot be made.
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * 10)]
    victim = ids[3]
    failing_rows(monkeypatch, AttributeError("'list' object has no attribute 'get'"), victim)

    moved = intake.run_intake(pipeline, "t")

    assert moved == 9
    assert set(request_states(pipeline)) == set(ids) - {victim}
    [letter] = dead_letters(redis_client)
    assert letter[b"id"] == victim.encode()
    assert b"AttributeError" in letter[b"reason"]
    assert pipeline.intake.depth() == 0


def test_intake__a_fault_every_request_meets_stops_intake_and_buries_nothing(
    pipeline: Pipeline, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bad deploy: the code, not the data, fails on every request.
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * 10)]
    fix = failing_rows(
        monkeypatch, TypeError("request_row() got an unexpected keyword argument 'now'")
    )

    with pytest.raises(TypeError, match="unexpected keyword"):
        intake.run_intake(pipeline, "t")

    assert dead_letters(redis_client) == []
    assert request_states(pipeline) == {}
    # Left unacknowledged: once the code is fixed, the reclaim takes every one in.
    fix()
    fixed = _reclaiming_at_once(pipeline)
    assert intake.run_intake(fixed, "t") == len(ids)
    assert set(request_states(pipeline)) == set(ids)


def test_intake__a_quiet_deployment_loses_one_request_to_a_bad_deploy_not_all(
    pipeline: Pipeline, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few requests at a time: each chunk holds one, so no chunk alone shows the fault.
    fix = failing_rows(monkeypatch, KeyError("share_key"))
    with Producer(pipeline.settings) as producer:
        first = producer.enqueue(PARAMS).id
        assert intake.run_intake(pipeline, "t") == 0  # alone: poison, as far as it can tell
        second = producer.enqueue(PARAMS).id
        with pytest.raises(KeyError, match="share_key"):
            intake.run_intake(pipeline, "t")  # the second in a row: the code, not the data

        assert [letter[b"id"] for letter in dead_letters(redis_client)] == [first.encode()]
        fix()
        fixed = _reclaiming_at_once(pipeline)
        assert intake.run_intake(fixed, "t") == 1
        assert set(request_states(pipeline)) == {second}
        # A request made its row: the count starts again.
        assert fixed.rows_failed_in_a_row == 0
