"""The services through the real SDK adapter against the emulator's faults.

Lost create answers, results streams with \\r\\n split across chunks, streams
cut midway and 429s on create: what the real API can do, end to end.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from batchline.domain.states import BatchState
from batchline.emulator import EmulatorServer, FaultConfig
from batchline.models import Batch
from batchline.producer import Producer
from batchline.services import reconcile
from batchline.services.context import Pipeline
from harness.emulated import ShiftedClock, final_states, poll_and_ingest, run_once

pytestmark = [pytest.mark.integration, pytest.mark.emulator]

PARAMS = {"model": "claude-test", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


def test_emulator__lost_create_answer_ends_with_one_paid_batch(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    pipeline, emulator, clock = on_emulator
    emulator.set_faults(FaultConfig(lost_create_responses=1))
    with Producer(pipeline.settings) as producer:
        handles = producer.enqueue_many([PARAMS] * 3)
        run_once(pipeline)
        with pipeline.sessions() as session:
            assert session.scalar(select(Batch.state)) == BatchState.UNKNOWN

        # Time passes for both: the reconciler reads the API's time from its Date header.
        later = pipeline.settings.create_timeout_seconds + 61
        clock.offset = timedelta(seconds=later)
        emulator.admin().advance_clock(later)
        report = reconcile.reconcile(pipeline)
        poll_and_ingest(pipeline)

        assert len(report.tracked) == 1
        assert {h.result(timeout=5).type for h in handles} == {"succeeded"}
    records = emulator.records()
    assert records.creates == 1 and records.lost_create_responses == 1
    assert len(records.batches) == 1


def test_emulator__crlf_results_split_at_any_byte_are_ingested_whole(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    pipeline, emulator, _ = on_emulator
    emulator.set_faults(
        FaultConfig(
            results_crlf=True,
            results_split_chunks=True,
            results_split_max_bytes=7,
        )
    )
    # Two replies of 200 KB (the emulator's marker), four ordinary ones.
    long = {**PARAMS, "messages": [{"role": "user", "content": "[[emulator:long:200000]]"}]}
    with Producer(pipeline.settings) as producer:
        handles = producer.enqueue_many([long, long, PARAMS, PARAMS, PARAMS, PARAMS])
        run_once(pipeline)
        poll_and_ingest(pipeline)
        texts = [h.result(timeout=5).message.content[0].text for h in handles]  # type: ignore[union-attr]
    assert final_states(pipeline) == {"succeeded": 6}
    assert max(len(t) for t in texts) >= 200_000


def test_emulator__cut_results_stream_is_ingested_on_the_next_try(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    pipeline, emulator, clock = on_emulator
    emulator.set_faults(FaultConfig(results_cut_after_bytes=1500))
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([PARAMS] * 5)
        run_once(pipeline)
        with pytest.raises(Exception):  # noqa: B017 - the transport's own error type
            poll_and_ingest(pipeline)
        partial = final_states(pipeline)
        assert partial.get("in_batch", 0) > 0

        emulator.set_faults(FaultConfig())
        clock.offset = timedelta(seconds=pipeline.settings.ingest_lease_seconds + 1)
        poll_and_ingest(pipeline)
    assert final_states(pipeline) == {"succeeded": 5}


def test_emulator__429_on_create_backs_off_then_submits(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    pipeline, emulator, clock = on_emulator
    emulator.set_faults(FaultConfig(scripted_errors={"create": [429]}))
    with Producer(pipeline.settings) as producer:
        [handle] = producer.enqueue_many([PARAMS])
        run_once(pipeline)
        with pipeline.sessions() as session:
            batch = session.scalars(select(Batch)).one()
            assert batch.state == BatchState.PREPARED and "429" in (batch.error or "")
        clock.offset = timedelta(seconds=120)
        run_once(pipeline)
        poll_and_ingest(pipeline)
        assert handle.result(timeout=5).type == "succeeded"
    assert emulator.records().creates == 1


def test_emulator__cancel_batch_cancels_its_unfinished_requests(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    from batchline.control import cancel_batch

    pipeline, emulator, _ = on_emulator
    emulator.set_faults(FaultConfig(processing_seconds=3600))
    with Producer(pipeline.settings) as producer:
        handles = producer.enqueue_many([PARAMS] * 3)
        run_once(pipeline)
        with pipeline.sessions() as session:
            batch_id = session.scalars(select(Batch.id)).one()

        assert cancel_batch(batch_id, pipeline.settings)
        poll_and_ingest(pipeline)  # the poll sends the cancel
        emulator.clock.advance(2)
        poll_and_ingest(pipeline)

        assert {h.result(timeout=5).type for h in handles} == {"canceled"}
    with pipeline.sessions() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.cancel_initiated_at is not None
        assert batch.count_canceled == 3 and batch.state == BatchState.INGESTED


def test_emulator__archived_results_send_requests_round_again(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    pipeline, emulator, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        [handle] = producer.enqueue_many([PARAMS])
        run_once(pipeline)
        with pipeline.sessions() as session:
            ids = list(session.scalars(select(Batch.id)))
        from batchline.services import poll

        poll.poll_batch(pipeline, ids[0])  # ended; its results are not read yet
        emulator.clock.advance(30 * 24 * 3600)  # ...and now they are archived
        poll_and_ingest(pipeline)
        assert handle.status() == "queued"
        run_once(pipeline)
        poll_and_ingest(pipeline)
        assert handle.result(timeout=5).type == "succeeded"


def test_emulator__batch_deleted_remotely_sends_requests_round_again(
    on_emulator: tuple[Pipeline, EmulatorServer, ShiftedClock],
) -> None:
    import anthropic

    pipeline, emulator, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        [handle] = producer.enqueue_many([PARAMS])
        run_once(pipeline)
        with pipeline.sessions() as session:
            remote_id = session.scalars(select(Batch.remote_id)).one()
        with anthropic.Anthropic(base_url=emulator.base_url, api_key="k") as client:
            client.messages.batches.delete(str(remote_id))
        poll_and_ingest(pipeline)
        assert handle.status() == "queued"
        with pipeline.sessions() as session:
            assert "404" in (session.scalars(select(Batch.error)).one() or "")
        run_once(pipeline)
        poll_and_ingest(pipeline)
        assert handle.result(timeout=5).type == "succeeded"
