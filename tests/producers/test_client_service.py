"""`batchline.AsyncAnthropic` / `batchline.Anthropic` as drop-ins for the SDK's messages.create,
through real celery worker and beat subprocesses, PostgreSQL, Redis and the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

import batchline
from batchline import cookbook
from batchline import producer as producer_module
from batchline.producer import Producer
from batchline.settings import Settings
from harness.processes import ServiceProcesses, service_env

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]


@pytest.fixture
def service(
    pg_db: str,
    redis_url: str,
    emulator_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    emulator = emulator_factory(processing_seconds=1.0)
    procs = ServiceProcesses(service_env(pg_db, redis_url, emulator.base_url), tmp_path)
    # The client reads the same environment any application would.
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", pg_db)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", redis_url)
    monkeypatch.setattr(producer_module, "_default", None)
    try:
        procs.worker()
        procs.beat()
        yield
    finally:
        if producer_module._default is not None:
            producer_module._default.close()
        procs.stop_all()


async def notebook(client: Any, requests: dict[str, dict[str, Any]]) -> dict[str, Message]:
    """The notebook's calls as SDK code writes them: one messages.create per request."""
    replies = await asyncio.gather(
        *(client.messages.create(**params) for params in requests.values())
    )
    return dict(zip(requests, replies, strict=True))


def comparable(message: Message) -> dict[str, Any]:
    # Message ids differ per batch; everything else must match.
    return message.model_dump(exclude={"id"})


def test_client__cookbook_examples_through_async_create_equal_the_enqueue_path(
    service: None, pg_db: str, redis_url: str
) -> None:
    client = batchline.AsyncAnthropic()  # was: anthropic.AsyncAnthropic()
    requests = {**cookbook.example_1(), **cookbook.example_2()}
    replies = asyncio.run(notebook(client, requests))

    with Producer(Settings(database_url=pg_db, redis_url=redis_url)) as producer:
        handles = {cid: producer.enqueue(params) for cid, params in requests.items()}
        results = {cid: h.result(timeout=90) for cid, h in handles.items()}
    for custom_id, reply in replies.items():
        assert type(reply) is Message, custom_id
        assert results[custom_id].type == "succeeded"
        assert comparable(reply) == comparable(results[custom_id].message), custom_id  # type: ignore[union-attr]
    assert "image/png" in str(replies["image-analysis"].content)


def test_client__errored_result_raises_the_sdks_exception_and_stream_is_refused(
    service: None,
) -> None:
    client = batchline.Anthropic()
    params = cookbook.example_1()["question-0"]
    bad = {
        **params,
        "messages": [{"role": "user", "content": "[[emulator:errored:invalid_request_error]]"}],
    }
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(**bad, timeout=90)
    assert raised.value.status_code == 400
    assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(ValueError, match="stream=True cannot go through a batch"):
        client.messages.create(**params, stream=True)
    with pytest.raises(TimeoutError):
        client.messages.create(**params, timeout=0.01)
