"""What the HTTP intake refuses, and that nothing refused is enqueued: `batchline serve`
as a subprocess against real Redis and PostgreSQL, called with plain http.client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from batchline import cookbook
from batchline.domain.validation import InvalidRequest, encode_params
from batchline.http_api.openapi import document
from batchline.keys import RedisKeys
from harness.processes import ServiceProcesses, service_env
from tests.producers.http_service import ADMIN_TOKEN, BODY_LIMIT, Api, start_serve

pytestmark = [pytest.mark.integration]
CHECKED_IN = Path(__file__).parents[2] / "worker" / "http_api" / "openapi.json"
PARAMS = cookbook.example_1()["question-0"]


@pytest.fixture
def api(pg_db: str, redis_url: str, tmp_path: Path) -> Iterator[Api]:
    procs = ServiceProcesses(service_env(pg_db, redis_url, "http://127.0.0.1:9"), tmp_path)
    try:
        yield start_serve(procs, tmp_path)
    finally:
        procs.stop_all()


def queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xlen(RedisKeys("batchline").intake_stream))
    finally:
        client.close()


def error_of(answer: tuple[int, dict[str, str], Any]) -> tuple[int, str, str]:
    status, _, body = answer
    assert body["type"] == "error", body
    return status, body["error"]["type"], body["error"]["message"]


def test_http__no_token_or_an_unknown_one_is_refused(api: Api, redis_url: str) -> None:
    assert error_of(api.call("POST", "/v1/requests", PARAMS, token=None))[:2] == (
        401,
        "authentication_error",
    )
    assert error_of(api.call("POST", "/v1/requests", PARAMS, token="guess"))[:2] == (
        401,
        "authentication_error",
    )
    assert error_of(api.call("GET", "/v1/batches", token=ADMIN_TOKEN + "x"))[0] == 401
    assert queued(redis_url) == 0


def test_http__invalid_params_get_enqueues_own_message(api: Api, redis_url: str) -> None:
    bad = {**PARAMS, "max_tokens": 0}
    with pytest.raises(InvalidRequest) as refused:
        encode_params(bad)
    assert error_of(api.call("POST", "/v1/requests", bad)) == (
        400,
        "invalid_request_error",
        str(refused.value),
    )
    assert error_of(api.call("POST", "/v1/requests", {**PARAMS, "stream": True}))[0] == 400
    assert (
        error_of(
            api.call(
                "POST", "/v1/requests", b"{not json", headers={"Content-Type": "application/json"}
            )
        )[0]
        == 400
    )
    assert queued(redis_url) == 0


def test_http__deadline_and_priority_are_refused_not_dropped(api: Api, redis_url: str) -> None:
    status, kind, message = error_of(
        api.call("POST", "/v1/requests", {"params": PARAMS, "priority": 1})
    )
    assert (status, kind) == (400, "invalid_request_error") and "not supported yet" in message
    status, _, message = error_of(
        api.call("POST", "/v1/requests", PARAMS, headers={"Batchline-Deadline": "60"})
    )
    assert status == 400 and "not supported yet" in message
    assert queued(redis_url) == 0


def test_http__body_too_large_is_413_and_nothing_enqueued(api: Api, redis_url: str) -> None:
    big = {**PARAMS, "messages": [{"role": "user", "content": "x" * (BODY_LIMIT + 1)}]}
    assert error_of(api.call("POST", "/v1/requests", big))[:2] == (413, "request_too_large")
    # Without Content-Length (chunked), counted while reading.
    line = json.dumps({"custom_id": "big", "params": big}).encode()
    chunked = api.call(
        "POST",
        "/v1/requests",
        iter([line[:1000], line[1000:]]),
        headers={"Content-Type": "application/jsonl"},
    )
    assert error_of(chunked)[:2] == (413, "request_too_large")
    assert queued(redis_url) == 0


def test_http__bad_jsonl_line_names_it_and_keeps_the_lines_before(api: Api, redis_url: str) -> None:
    lines = [{"custom_id": f"q-{i}", "params": PARAMS} for i in range(3)]
    lines.insert(2, {"custom_id": "bad", "params": {**PARAMS, "max_tokens": 0}})
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    status, _, message = error_of(
        api.call("POST", "/v1/requests", body, headers={"Content-Type": "application/jsonl"})
    )
    assert status == 400 and message.startswith("line 3: ") and "2 line(s) before it" in message
    assert queued(redis_url) == 2
    fixed = body.replace(b'"max_tokens": 0', b'"max_tokens": 5')
    status, _, bulk = api.call(
        "POST", "/v1/requests", fixed, headers={"Content-Type": "application/jsonl"}
    )
    assert status == 202 and len(bulk["requests"]) == 4
    assert queued(redis_url) == 4  # the two accepted before were not enqueued twice


def test_http__openapi_served_equals_the_checked_in_file(api: Api) -> None:
    status, _, served = api.call("GET", "/openapi.json", token=None)
    assert status == 200
    assert served == json.loads(CHECKED_IN.read_text()) == document()


def test_http__metrics_count_calls_by_route_and_status(api: Api) -> None:
    api.call("POST", "/v1/requests", PARAMS)
    api.call("POST", "/v1/requests", PARAMS, token=None)
    status, _, text = api.call("GET", "/metrics", token=None)
    assert status == 200
    assert (
        'batchline_http_requests_total{method="POST",route="/v1/requests",status="202"} 1.0' in text
    )
    assert (
        'batchline_http_requests_total{method="POST",route="/v1/requests",status="401"} 1.0' in text
    )
    assert "batchline_http_enqueued_requests_total 1.0" in text


def test_http__queue_full_is_429_with_retry_after_and_nothing_more_enqueued(
    pg_db: str, redis_url: str, tmp_path: Path
) -> None:
    # A queue limit a few requests wide: no worker drains it, so it fills.
    env = service_env(pg_db, redis_url, "http://127.0.0.1:9", BATCHLINE_MAX_QUEUE_BYTES="4000")
    procs = ServiceProcesses(env, tmp_path)
    try:
        api = start_serve(procs, tmp_path)
        statuses = [api.call("POST", "/v1/requests", PARAMS)[0] for _ in range(20)]
        accepted = statuses.count(202)
        assert 0 < accepted < 20 and set(statuses) == {202, 429}, statuses
        assert queued(redis_url) == accepted  # a refused request left nothing behind
        status, headers, body = api.call("POST", "/v1/requests", PARAMS)
        assert (status, body["error"]["type"]) == (429, "rate_limit_error")
        assert int(headers["retry-after"]) > 0
        assert "BATCHLINE_MAX_QUEUE_BYTES" in body["error"]["message"] or "queue" in (
            body["error"]["message"].lower()
        )
    finally:
        procs.stop_all()


def test_http__beta_parameter_needs_the_betas_field(api: Api, redis_url: str) -> None:
    from batchline.domain.validation import known_params

    beta_only = sorted(known_params(beta=True) - known_params())[0]
    beta_params = {**PARAMS, beta_only: None}
    status, kind, message = error_of(api.call("POST", "/v1/requests", beta_params))
    assert (status, kind) == (400, "invalid_request_error") and "betas=" in message
    assert queued(redis_url) == 0

    envelope = {"params": beta_params, "betas": ["mcp-client-2025-04-04"]}
    assert api.call("POST", "/v1/requests", envelope)[0] == 202
    bad = {"params": beta_params, "betas": "mcp-client-2025-04-04"}
    assert error_of(api.call("POST", "/v1/requests", bad))[0] == 400
    client = redis.Redis.from_url(redis_url)
    try:
        entries: Any = client.xrange(RedisKeys("batchline").intake_stream)
        [(_, fields)] = entries
    finally:
        client.close()
    assert json.loads(fields[b"m"])["betas"] == ["mcp-client-2025-04-04"]
