"""Shared helpers for the emulator tests: requests, strict result parsing, JSONL reading."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any, cast

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from anthropic.types.messages.batch_create_params import Request
from pydantic import BaseModel

from batchline.emulator import EmulatorServer
from tests.emulator_fixtures import FIXTURE_PROCESSING_SECONDS, TEST_API_KEY

MODEL = "claude-sonnet-4-5"
API_HEADERS = {"x-api-key": TEST_API_KEY, "anthropic-version": "2023-06-01"}
# A 1x1 transparent PNG.
TINY_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000b49444154789c6360000200000500017a5eab3f0000000049454e44ae426082"
    )
).decode()


def question(custom_id: str, text: str, **params: Any) -> Request:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(params)
    return cast(Request, {"custom_id": custom_id, "params": body})


def questions(count: int, prefix: str = "q") -> list[Request]:
    return [question(f"{prefix}-{i}", f"Question number {i}?") for i in range(count)]


def end_processing(emulator: EmulatorServer) -> None:
    """Move emulated time past the processing window of every batch made so far."""
    emulator.clock.advance(FIXTURE_PROCESSING_SECONDS + 2)


def ended(emulator: EmulatorServer, client: anthropic.Anthropic, batch_id: str) -> MessageBatch:
    end_processing(emulator)
    batch = client.messages.batches.retrieve(batch_id)
    assert batch.processing_status == "ended"
    return batch


def assert_no_extra_fields(model: BaseModel) -> None:
    """The SDK's models accept unknown fields; the emulator must not send any."""
    assert not model.model_extra, f"{type(model).__name__} has extra fields {model.model_extra}"
    for name in type(model).model_fields:
        _check_value(getattr(model, name))


def _check_value(value: object) -> None:
    if isinstance(value, BaseModel):
        assert_no_extra_fields(value)
    elif isinstance(value, list):
        for item in value:
            _check_value(item)


def strict_result(line: bytes | str) -> MessageBatchIndividualResponse:
    parsed = MessageBatchIndividualResponse.model_validate_json(line, strict=True)
    assert_no_extra_fields(parsed)
    return parsed


def strict_batch(batch: MessageBatch) -> MessageBatch:
    parsed = MessageBatch.model_validate_json(batch.model_dump_json(), strict=True)
    assert_no_extra_fields(batch)
    return parsed


def jsonl_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a JSONL stream read in chunks of any size, `\\n` or `\\r\\n` split anywhere."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line:
                yield line
    if pending.strip():
        yield pending.rstrip(b"\r")


def fetch_results(
    emulator: EmulatorServer, batch_id: str, chunk_size: int = 1 << 16
) -> list[MessageBatchIndividualResponse]:
    """Download results with plain httpx2, reading large chunks, parsing strictly."""
    url = f"{emulator.base_url}/v1/messages/batches/{batch_id}/results"
    with httpx2.Client() as http, http.stream("GET", url, headers=API_HEADERS) as response:
        assert response.status_code == 200
        return [strict_result(line) for line in jsonl_lines(response.iter_bytes(chunk_size))]


def raw_results(emulator: EmulatorServer, batch_id: str) -> bytes:
    url = f"{emulator.base_url}/v1/messages/batches/{batch_id}/results"
    with httpx2.Client() as http:
        response = http.get(url, headers=API_HEADERS)
        assert response.status_code == 200
        return response.content


def by_custom_id(
    results: Iterable[MessageBatchIndividualResponse],
) -> dict[str, MessageBatchIndividualResponse]:
    found = {r.custom_id: r for r in results}
    return found


def reply_text(result: MessageBatchIndividualResponse) -> str:
    assert result.result.type == "succeeded", result.result
    block = result.result.message.content[0]
    assert block.type == "text"
    return block.text
