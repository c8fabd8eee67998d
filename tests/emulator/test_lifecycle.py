"""Batches through the real SDK: create, retrieve, list, cancel, delete, results, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anthropic
import pytest

from batchline.emulator import EmulatorServer
from tests.emulator.helpers import (
    by_custom_id,
    end_processing,
    ended,
    fetch_results,
    question,
    questions,
    reply_text,
    strict_batch,
)
from tests.emulator_fixtures import make_async_client, make_client

pytestmark = pytest.mark.emulator

DAY = 24 * 3600.0


def test_create__answers_an_in_progress_batch_counting_every_request_as_processing(
    emulator_client: anthropic.Anthropic,
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(3))

    strict_batch(batch)
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3
    assert batch.request_counts.succeeded == 0
    assert batch.results_url is None
    assert batch.ended_at is None and batch.cancel_initiated_at is None
    assert batch.archived_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(DAY)


def test_retrieve__stays_in_progress_until_processing_time_has_passed(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    emulator.clock.set_speed(0)
    batch = emulator_client.messages.batches.create(requests=questions(2))

    still = emulator_client.messages.batches.retrieve(batch.id)
    emulator.clock.advance(1)
    done = emulator_client.messages.batches.retrieve(batch.id)

    assert still.processing_status == "in_progress"
    assert still.request_counts.processing == 2
    assert done.processing_status == "ended"
    assert done.request_counts.processing == 0
    assert done.request_counts.succeeded == 2
    assert done.ended_at is not None and done.ended_at > done.created_at


def test_retrieve__results_url_is_absolute_on_the_emulator(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(1))

    done = ended(emulator, emulator_client, batch.id)

    assert done.results_url == f"{emulator.base_url}/v1/messages/batches/{batch.id}/results"


def test_results__sdk_yields_one_strictly_valid_result_per_request(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(5))
    ended(emulator, emulator_client, batch.id)

    results = by_custom_id(emulator_client.messages.batches.results(batch.id))

    assert sorted(results) == [f"q-{i}" for i in range(5)]
    assert "Question number 3?" in reply_text(results["q-3"])
    strict = by_custom_id(fetch_results(emulator, batch.id))
    message = strict["q-0"].result.message  # type: ignore[union-attr]
    assert message.id.startswith("msg_")
    assert message.role == "assistant"
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert message.usage.service_tier == "batch"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_results__async_client_creates_polls_and_reads_results(emulator: EmulatorServer) -> None:
    async def scenario() -> dict[str, str]:
        async with make_async_client(emulator) as client:
            batch = await client.messages.batches.create(requests=questions(3))
            end_processing(emulator)
            done = await client.messages.batches.retrieve(batch.id)
            assert done.processing_status == "ended"
            decoder = await client.messages.batches.results(batch.id)
            return {r.custom_id: r.result.type async for r in decoder}

    assert asyncio.run(scenario()) == {"q-0": "succeeded", "q-1": "succeeded", "q-2": "succeeded"}


def test_results__same_params_give_the_same_reply_and_distinct_message_ids(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    first = emulator_client.messages.batches.create(
        requests=[question("a", "Why is the sky blue?")]
    )
    second = emulator_client.messages.batches.create(
        requests=[question("a", "Why is the sky blue?")]
    )
    end_processing(emulator)

    one = fetch_results(emulator, first.id)[0]
    two = fetch_results(emulator, second.id)[0]
    again = fetch_results(emulator, first.id)[0]

    assert reply_text(one) == reply_text(two)
    assert one.result.message.id != two.result.message.id  # type: ignore[union-attr]
    assert again == one


def test_results__before_the_batch_ends_the_sdk_refuses(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    emulator.clock.set_speed(0)
    batch = emulator_client.messages.batches.create(requests=questions(1))

    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        emulator_client.messages.batches.results(batch.id)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_list__auto_paging_walks_every_batch_newest_first(
    emulator: EmulatorServer, client_kind: str
) -> None:
    with make_client(emulator) as client:
        created = [client.messages.batches.create(requests=questions(1)).id for _ in range(7)]

    if client_kind == "sync":
        with make_client(emulator) as client:
            listed = [b.id for b in client.messages.batches.list(limit=3)]
    else:

        async def walk() -> list[str]:
            async with make_async_client(emulator) as client:
                return [b.id async for b in client.messages.batches.list(limit=3)]

        listed = asyncio.run(walk())

    assert listed == list(reversed(created))


def test_list__pages_carry_first_id_last_id_and_has_more(
    emulator_client: anthropic.Anthropic,
) -> None:
    created = [emulator_client.messages.batches.create(requests=questions(1)).id for _ in range(5)]
    newest_first = list(reversed(created))

    page = emulator_client.messages.batches.list(limit=2)
    older = emulator_client.messages.batches.list(limit=2, after_id=newest_first[1])
    newer = emulator_client.messages.batches.list(limit=2, before_id=newest_first[4])
    last = emulator_client.messages.batches.list(limit=10, after_id=newest_first[2])

    assert [b.id for b in page.data] == newest_first[:2]
    assert (page.first_id, page.last_id, page.has_more) == (newest_first[0], newest_first[1], True)
    assert [b.id for b in older.data] == newest_first[2:4]
    assert [b.id for b in newer.data] == newest_first[2:4]
    assert newer.has_more is True
    assert [b.id for b in last.data] == newest_first[3:]
    assert last.has_more is False


def test_list__limit_outside_1_to_1000_is_a_bad_request(
    emulator_client: anthropic.Anthropic,
) -> None:
    for limit in (0, 1001):
        with pytest.raises(anthropic.BadRequestError):
            emulator_client.messages.batches.list(limit=limit)


def test_cancel__batch_goes_canceling_then_ends_with_its_requests_canceled(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    emulator.clock.set_speed(0)
    batch = emulator_client.messages.batches.create(requests=questions(4))

    canceling = emulator_client.messages.batches.cancel(batch.id)
    emulator.clock.advance(2)
    done = emulator_client.messages.batches.retrieve(batch.id)

    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 4
    assert done.processing_status == "ended"
    assert done.request_counts.canceled == 4
    assert done.cancel_initiated_at == canceling.cancel_initiated_at
    results = fetch_results(emulator, batch.id)
    assert {r.result.type for r in results} == {"canceled"}


def test_cancel__requests_done_before_the_cancel_keep_their_result(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(processing_seconds=100, clock_speed=0)
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(40))
        emulator.clock.advance(50)
        client.messages.batches.cancel(batch.id)
        emulator.clock.advance(2)
        done = client.messages.batches.retrieve(batch.id)

    counts = done.request_counts
    assert counts.succeeded > 0 and counts.canceled > 0
    assert counts.succeeded + counts.canceled == 40
    types = [r.result.type for r in fetch_results(emulator, batch.id)]
    assert types.count("succeeded") == counts.succeeded


def test_cancel__an_ended_batch_is_refused(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(1))
    ended(emulator, emulator_client, batch.id)

    with pytest.raises(anthropic.BadRequestError):
        emulator_client.messages.batches.cancel(batch.id)


def test_delete__refused_while_processing_then_allowed_once_ended(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    emulator.clock.set_speed(0)
    batch = emulator_client.messages.batches.create(requests=questions(1))

    with pytest.raises(anthropic.BadRequestError) as refused:
        emulator_client.messages.batches.delete(batch.id)
    emulator_client.messages.batches.cancel(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        emulator_client.messages.batches.delete(batch.id)
    emulator.clock.advance(2)
    deleted = emulator_client.messages.batches.delete(batch.id)

    assert refused.value.type == "invalid_request_error"
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        emulator_client.messages.batches.retrieve(batch.id)
    assert [b.id for b in emulator_client.messages.batches.list()] == []
    (record,) = emulator.records().batches
    assert record.id == batch.id and record.deleted


def test_expiry__a_batch_still_running_after_24h_ends_with_unfinished_requests_expired(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [question("stuck", "[[emulator:stuck]] hello"), question("fine", "hi")]
    batch = emulator_client.messages.batches.create(requests=requests)
    end_processing(emulator)

    running = emulator_client.messages.batches.retrieve(batch.id)
    emulator.clock.advance(DAY)
    done = emulator_client.messages.batches.retrieve(batch.id)

    assert running.processing_status == "in_progress"
    assert done.processing_status == "ended"
    assert done.ended_at == done.expires_at
    assert (done.request_counts.expired, done.request_counts.succeeded) == (1, 1)
    results = by_custom_id(fetch_results(emulator, batch.id))
    assert results["stuck"].result.type == "expired"
    assert results["fine"].result.type == "succeeded"


def test_expiry__a_processing_time_over_24h_expires_the_requests_not_done_in_time(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(processing_seconds=2 * DAY, clock_speed=0)
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(30))
        emulator.clock.advance(DAY + 1)
        done = client.messages.batches.retrieve(batch.id)

    assert done.processing_status == "ended"
    assert done.request_counts.expired > 0 and done.request_counts.succeeded > 0
    assert done.request_counts.expired + done.request_counts.succeeded == 30


def test_archive__after_29_days_archived_at_is_set_and_results_are_gone(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(1))
    fresh = ended(emulator, emulator_client, batch.id)
    emulator.clock.advance(29 * DAY)

    archived = emulator_client.messages.batches.retrieve(batch.id)

    assert fresh.archived_at is None
    assert archived.archived_at is not None
    assert (archived.archived_at - archived.created_at).total_seconds() == pytest.approx(29 * DAY)
    with pytest.raises(anthropic.NotFoundError):
        list(emulator_client.messages.batches.results(batch.id))
