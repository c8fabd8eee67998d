"""Validation, authentication and error shapes, mapped to the SDK's exceptions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import ANY

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types.messages import MessageBatch

from batchline.emulator import EmulatorServer
from tests.emulator.helpers import (
    API_HEADERS,
    MODEL,
    by_custom_id,
    ended,
    fetch_results,
    question,
    questions,
)
from tests.emulator_fixtures import make_client

pytestmark = pytest.mark.emulator

BATCHES = "/v1/messages/batches"


def _bad_create(client: anthropic.Anthropic, requests: Any) -> anthropic.BadRequestError:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.batches.create(requests=requests)
    return caught.value


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([], id="empty"),
        pytest.param([question("has space", "hi")], id="custom-id-bad-char"),
        pytest.param([question("x" * 65, "hi")], id="custom-id-too-long"),
        pytest.param([question("", "hi")], id="custom-id-empty"),
        pytest.param([question("dup", "a"), question("dup", "b")], id="custom-id-duplicate"),
        pytest.param([{"custom_id": "a"}], id="params-missing"),
        pytest.param([{"custom_id": "a", "params": "nope"}], id="params-not-object"),
        pytest.param(["not-an-object"], id="request-not-object"),
        pytest.param("not-a-list", id="requests-not-list"),
    ],
)
def test_create__bad_envelope_is_400_and_creates_nothing(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic, requests: Any
) -> None:
    error = _bad_create(emulator_client, requests)

    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert emulator.records().creates == 0


def test_create__more_than_100000_requests_is_400(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [{"custom_id": f"r{i}", "params": {}} for i in range(100_001)]

    error = _bad_create(emulator_client, requests)

    assert "100,000" in error.message
    assert emulator.records().creates == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_create__body_over_the_size_limit_is_413(
    emulator_factory: Callable[..., EmulatorServer], chunked: bool
) -> None:
    emulator = emulator_factory(max_body_bytes=2_000)
    body = orjson.dumps({"requests": questions(40)})

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    with (
        make_client(emulator, max_retries=0) as client,
        pytest.raises(anthropic.ContentTooLargeError) as caught,
    ):
        client.post(
            BATCHES,
            content=pieces() if chunked else body,
            cast_to=MessageBatch,
            options={"headers": {"content-type": "application/json"}},
        )

    assert caught.value.status_code == 413
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "request_too_large", "message": ANY},
        "request_id": caught.value.request_id,
    }
    assert emulator.records().creates == 0


def test_create__body_that_is_not_json_is_400(emulator: EmulatorServer) -> None:
    headers = {**API_HEADERS, "content-type": "application/json"}
    with httpx2.Client() as http:
        response = http.post(emulator.base_url + BATCHES, content=b"{nope", headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


HI = [{"role": "user", "content": "hi"}]
BMP = {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="}}


def _params(drop: str = "", **fields: Any) -> dict[str, Any]:
    params = {"model": MODEL, "max_tokens": 10, "messages": HI, **fields}
    params.pop(drop, None)
    return params


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        pytest.param(_params(drop="model"), "model", id="no-model"),
        pytest.param(_params(drop="max_tokens"), "max_tokens", id="no-max-tokens"),
        pytest.param(_params(drop="messages"), "messages", id="no-messages"),
        pytest.param(_params(max_tokens=0), "max_tokens", id="max-tokens-0"),
        pytest.param(_params(messages=[]), "messages", id="messages-empty"),
        pytest.param(_params(messages=[{"role": "robot", "content": "hi"}]), "role", id="bad-role"),
        pytest.param(_params(stream=True), "stream", id="stream"),
        pytest.param(_params(bogus=1), "bogus", id="unknown-field"),
        pytest.param(
            _params(messages=[{"role": "user", "content": [BMP]}]), "media_type", id="bad-image"
        ),
    ],
)
def test_results__invalid_params_are_accepted_then_errored_with_invalid_request_error(
    emulator: EmulatorServer,
    emulator_client: anthropic.Anthropic,
    params: dict[str, Any],
    mentions: str,
) -> None:
    requests = [{"custom_id": "bad", "params": params}, question("good", "hello")]
    batch = emulator_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]

    done = ended(emulator, emulator_client, batch.id)
    results = by_custom_id(fetch_results(emulator, batch.id))

    assert (done.request_counts.errored, done.request_counts.succeeded) == (1, 1)
    error = results["bad"].result.error.error  # type: ignore[union-attr]
    assert error.type == "invalid_request_error"
    assert mentions in error.message
    assert results["good"].result.type == "succeeded"


def test_auth__a_missing_key_is_401(emulator: EmulatorServer) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    with httpx2.Client() as http:
        response = http.get(emulator.base_url + BATCHES, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_auth__a_wrong_key_is_401_and_never_echoed(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(api_key="right-key")

    with (
        make_client(emulator, api_key="wrong-key-123") as client,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        client.messages.batches.list()

    assert caught.value.type == "authentication_error"
    assert "wrong-key-123" not in str(caught.value.body)
    assert "right-key" not in str(caught.value.body)


@pytest.mark.parametrize(
    "credentials",
    [{"x-api-key": "right-key"}, {"Authorization": "Bearer right-key"}],
    ids=["x-api-key", "bearer"],
)
def test_auth__either_header_carries_the_key(
    emulator_factory: Callable[..., EmulatorServer], credentials: dict[str, str]
) -> None:
    emulator = emulator_factory(api_key="right-key")
    headers = {"anthropic-version": "2023-06-01", **credentials}
    with httpx2.Client() as http:
        response = http.get(emulator.base_url + BATCHES, headers=headers)

    assert response.status_code == 200
    assert response.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_headers__anthropic_version_is_required(emulator: EmulatorServer) -> None:
    with httpx2.Client() as http:
        response = http.get(emulator.base_url + BATCHES, headers={"x-api-key": "k"})

    assert response.status_code == 400
    assert "anthropic-version" in response.json()["error"]["message"]


def test_not_found__unknown_batch_id_is_404_for_every_operation(
    emulator_client: anthropic.Anthropic,
) -> None:
    batches = emulator_client.messages.batches
    for call in (batches.retrieve, batches.cancel, batches.delete):
        with pytest.raises(anthropic.NotFoundError) as caught:
            call("msgbatch_01nosuchbatch")
        assert caught.value.type == "not_found_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing"), ("PUT", BATCHES), ("GET", "/v1/messages/batches/x/y")],
)
def test_not_found__unknown_route_is_404_in_the_error_shape(
    emulator: EmulatorServer, method: str, path: str
) -> None:
    with httpx2.Client() as http:
        response = http.request(method, emulator.base_url + path, headers=API_HEADERS)

    assert response.status_code == 404
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert body["request_id"] == response.headers["request-id"]


def test_headers__every_answer_carries_a_request_id(emulator: EmulatorServer) -> None:
    with httpx2.Client(base_url=emulator.base_url, headers=API_HEADERS) as http:
        created = http.post(BATCHES, json={"requests": questions(1)})
        answers = [
            created,
            http.get(BATCHES),
            http.get(f"{BATCHES}/{created.json()['id']}"),
            http.get(f"{BATCHES}/missing"),
            http.post(BATCHES, json={"requests": []}),
            http.get("/_emulator/health"),
        ]

    ids = [a.headers.get("request-id", "") for a in answers]
    assert all(i.startswith("req_") for i in ids)
    assert len(set(ids)) == len(ids)
