"""Fault injection, each fault seen through the SDK (or a plain httpx2 reader)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import anthropic
import httpx2
import orjson
import pytest

from batchline.emulator import EmulatorServer, FaultConfig
from batchline.emulator.errors import RESULT_ERROR_TYPES
from tests.emulator.helpers import (
    API_HEADERS,
    by_custom_id,
    end_processing,
    ended,
    fetch_results,
    jsonl_lines,
    question,
    questions,
    raw_results,
    strict_result,
)
from tests.emulator_fixtures import make_client

pytestmark = pytest.mark.emulator


def test_http_errors__a_429_with_retry_after_is_retried_by_the_sdk(
    emulator: EmulatorServer,
) -> None:
    emulator.set_faults(FaultConfig(scripted_errors={"create": [429]}, retry_after_seconds=0.05))

    with make_client(emulator) as client:
        started = time.monotonic()
        batch = client.messages.batches.create(requests=questions(1))
        waited = time.monotonic() - started

    assert batch.processing_status == "in_progress"
    assert emulator.faults.config.scripted_errors == {}
    assert emulator.records().creates == 1
    assert waited < 0.4, "the SDK should wait retry-after-ms (50 ms), not its own backoff"


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (504, anthropic.GatewayTimeoutError, "timeout_error"),
    ],
)
def test_http_errors__each_status_maps_to_its_sdk_exception_and_creates_nothing(
    emulator: EmulatorServer,
    status: int,
    exception: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    emulator.set_faults(FaultConfig(http_errors={"create": {status: 1.0}}))

    with make_client(emulator, max_retries=0) as client, pytest.raises(exception) as caught:
        client.messages.batches.create(requests=questions(1))

    assert caught.value.status_code == status
    assert caught.value.type == error_type
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["retry-after-ms"] == "1000"
    assert emulator.records().creates == 0


def test_http_errors__apply_per_endpoint(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(http_errors={"list": {500: 1.0}}))

    with make_client(emulator, max_retries=0) as client:
        batch = client.messages.batches.create(requests=questions(1))
        retrieved = client.messages.batches.retrieve(batch.id)
        with pytest.raises(anthropic.InternalServerError):
            client.messages.batches.list()

    assert retrieved.id == batch.id


def test_http_errors__a_seed_makes_the_sequence_reproducible(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    def statuses(seed: int) -> list[int]:
        emulator = emulator_factory(faults=FaultConfig.uniform(0.5, seed=seed))
        with httpx2.Client(headers=API_HEADERS) as http:
            url = emulator.base_url + "/v1/messages/batches"
            return [http.get(url).status_code for _ in range(30)]

    first, again, other = statuses(7), statuses(7), statuses(8)

    assert first == again
    assert first != other
    assert set(first) <= {200, 429, 500, 529} and 200 in first and len(set(first)) > 1


def test_lost_create__sdk_retries_and_makes_a_duplicate_batch(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(lost_create_responses=1))

    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(2))

    records = emulator.records()
    assert records.creates == 2
    assert records.lost_create_responses == 1
    lost, answered = records.batches
    assert lost.response_lost and not answered.response_lost
    assert answered.id == batch.id
    assert lost.request_count == answered.request_count == 2


def test_lost_create__without_retries_raises_connection_error_and_one_batch_exists(
    emulator: EmulatorServer,
) -> None:
    emulator.set_faults(FaultConfig(lost_create_responses=1))

    with make_client(emulator, max_retries=0) as client:
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.create(requests=questions(2))
        listed = [b.id for b in client.messages.batches.list()]

    (record,) = emulator.records(custom_ids=True).batches
    assert record.response_lost
    assert record.custom_ids == ("q-0", "q-1")
    assert listed == [record.id], "the batch exists: a reconciler can find it by listing"
    assert emulator.faults.config.lost_create_responses == 0


def test_results_cut__the_stream_closes_midway_and_reading_raises(
    emulator: EmulatorServer,
) -> None:
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(20))
        ended(emulator, client, batch.id)
        emulator.set_faults(FaultConfig(results_cut_after_bytes=3000))
        with pytest.raises((httpx2.HTTPError, anthropic.APIConnectionError)):
            list(client.messages.batches.results(batch.id))
        emulator.set_faults(FaultConfig())
        complete = list(client.messages.batches.results(batch.id))

    assert len(complete) == 20


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 20])
def test_results_crlf_split__lines_parse_whatever_the_read_size(
    emulator: EmulatorServer, chunk_size: int
) -> None:
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(12))
        ended(emulator, client, batch.id)
    emulator.set_faults(
        FaultConfig(results_crlf=True, results_split_chunks=True, results_split_max_bytes=9)
    )

    raw = raw_results(emulator, batch.id)
    results = fetch_results(emulator, batch.id, chunk_size=chunk_size)

    assert raw.count(b"\r\n") == 12 and raw.endswith(b"\r\n")
    assert sorted(r.custom_id for r in results) == sorted(f"q-{i}" for i in range(12))


def test_results_split__pieces_arrive_small_with_every_crlf_split(
    emulator: EmulatorServer,
) -> None:
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(3))
        ended(emulator, client, batch.id)
    emulator.set_faults(
        FaultConfig(
            results_crlf=True,
            results_split_chunks=True,
            results_split_max_bytes=5,
            results_chunk_delay_seconds=0.0005,
        )
    )
    url = f"{emulator.base_url}/v1/messages/batches/{batch.id}/results"

    with httpx2.Client() as http, http.stream("GET", url, headers=API_HEADERS) as response:
        pieces = list(response.iter_raw())

    assert max(len(p) for p in pieces) <= 64
    assert any(p.endswith(b"\r") for p in pieces)
    assert len(list(jsonl_lines(pieces))) == 3


def test_long_replies__lines_of_hundreds_of_kb_parse(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(long_reply_rate=1.0, long_reply_chars=400_000))
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(2))
        ended(emulator, client, batch.id)

    lines = raw_results(emulator, batch.id).splitlines()

    assert all(len(line) > 400_000 for line in lines)
    assert all(strict_result(line).result.type == "succeeded" for line in lines)


def test_errored_share__cycles_through_every_error_type(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(errored_rate=1.0))
    count = len(RESULT_ERROR_TYPES)
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(count))
        done = ended(emulator, client, batch.id)

    results = fetch_results(emulator, batch.id)

    assert done.request_counts.errored == count
    types = {r.result.error.error.type for r in results}  # type: ignore[union-attr]
    assert types == set(RESULT_ERROR_TYPES)


def test_errored_and_expired_shares__counts_match_the_results(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(errored_rate=0.3, expired_rate=0.3, seed=3))
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=questions(200))
        done = ended(emulator, client, batch.id)
    emulator.set_faults(FaultConfig())

    kinds = Counter(r.result.type for r in fetch_results(emulator, batch.id))
    counts = done.request_counts

    assert kinds == {
        "succeeded": counts.succeeded,
        "errored": counts.errored,
        "expired": counts.expired,
    }
    assert 30 < counts.errored < 90 and 30 < counts.expired < 90
    assert sum(kinds.values()) == 200


def test_markers__force_outcomes_per_request(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(errored_rate=1.0))
    requests = [
        question("over", "[[emulator:errored:overloaded_error]] hi"),
        question("gone", "[[emulator:expired]] hi"),
        question("fine", "[[emulator:succeeded]] hi"),
        question("meta", "hi", metadata={"user_id": "[[emulator:errored:billing_error]]"}),
        question("typo", "[[emulator:exploded]] hi"),
        question("long", "[[emulator:succeeded]] [[emulator:long:250000]] hi"),
    ]
    with make_client(emulator) as client:
        batch = client.messages.batches.create(requests=requests)
        ended(emulator, client, batch.id)

    results = by_custom_id(fetch_results(emulator, batch.id))

    assert results["over"].result.error.error.type == "overloaded_error"  # type: ignore[union-attr]
    assert results["gone"].result.type == "expired"
    assert results["fine"].result.type == "succeeded"
    assert results["meta"].result.error.error.type == "billing_error"  # type: ignore[union-attr]
    typo = results["typo"].result.error.error  # type: ignore[union-attr]
    assert typo.type == "invalid_request_error" and "exploded" in typo.message
    long_text = results["long"].result.message.content[0].text  # type: ignore[union-attr]
    assert len(long_text) == 250_000


def test_processing_seconds__a_fault_can_slow_new_batches(emulator: EmulatorServer) -> None:
    emulator.set_faults(FaultConfig(processing_seconds=3600))
    with make_client(emulator) as client:
        slow = client.messages.batches.create(requests=questions(1))
        end_processing(emulator)
        running = client.messages.batches.retrieve(slow.id)
        emulator.clock.advance(3600)
        done = client.messages.batches.retrieve(slow.id)

    assert running.processing_status == "in_progress"
    assert done.processing_status == "ended"


def test_admin__faults_clock_and_records_over_http(emulator: EmulatorServer) -> None:
    admin = emulator.admin()

    config = admin.set_faults(http_errors={"create": {429: 0.25}}, lost_create_responses=2)
    updated = admin.update_faults(results_crlf=True)
    before = admin.clock()
    after = admin.advance_clock(3600)
    frozen = admin.set_clock_speed(0)
    with make_client(emulator, max_retries=0) as client:
        admin.clear_faults()
        client.messages.batches.create(requests=questions(2))
    records = admin.records(custom_ids=True)

    assert config.http_errors == {"create": {429: 0.25}}
    assert updated.results_crlf and updated.lost_create_responses == 2
    assert after.now_epoch - before.now_epoch >= 3600
    assert frozen.speed == 0
    assert records.creates == 1 and records.batches[0].custom_ids == ("q-0", "q-1")
    assert admin.health()


def test_admin__bad_fault_settings_are_refused(emulator: EmulatorServer) -> None:
    url = emulator.base_url + "/_emulator/faults"
    with httpx2.Client() as http:
        unknown = http.put(url, content=orjson.dumps({"no_such_fault": 1}))
        bad_share = http.put(url, content=orjson.dumps({"errored_rate": 2}))

    assert unknown.status_code == bad_share.status_code == 400
    assert "no_such_fault" in unknown.json()["error"]["message"]


def test_fault_config__round_trips_through_json() -> None:
    config = FaultConfig(
        seed=5,
        http_errors={"*": {500: 0.1}, "results": {529: 0.2}},
        scripted_errors={"create": [429, 500]},
        lost_create_responses=3,
        results_cut_after_bytes=10,
        error_types=("api_error", "overloaded_error"),
    )

    assert FaultConfig.from_dict(orjson.loads(orjson.dumps(config.to_dict()))) == config
    assert FaultConfig.from_dict({}) == FaultConfig()
    with pytest.raises(ValueError, match="endpoint"):
        FaultConfig(http_errors={"nowhere": {500: 0.1}})
