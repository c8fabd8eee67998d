"""Params validation: the installed SDK's types (non-beta and beta) and the API's cross-field rules.

Every parameter and every tool kind the SDK's types name is driven through the
real SDK, sync and async; each result line is validated against the SDK's own
result type (the beta one on the beta endpoint).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types.beta import BetaMessage
from anthropic.types.beta.messages import BetaMessageBatch, BetaMessageBatchIndividualResponse
from anthropic.types.messages import MessageBatchIndividualResponse
from pydantic import BaseModel

from batchline.emulator import EmulatorServer
from batchline.emulator.validation import params_error
from tests.emulator.helpers import API_HEADERS, end_processing, jsonl_lines
from tests.emulator.sdk_examples import BASE, CURATED, MCP_BETA, every_param
from tests.emulator_fixtures import make_async_client, make_client

pytestmark = pytest.mark.emulator


def results_of(
    emulator: EmulatorServer, batch_id: str, model: type[BaseModel], beta: bool
) -> dict[str, Any]:
    query = "?beta=true" if beta else ""
    url = f"{emulator.base_url}/v1/messages/batches/{batch_id}/results{query}"
    with httpx2.Client() as http:
        response = http.get(url, headers=API_HEADERS)
    assert response.status_code == 200
    parsed = [
        model.model_validate_json(line, strict=True) for line in jsonl_lines([response.content])
    ]
    return {r.custom_id: r.result for r in parsed}  # type: ignore[attr-defined]


def _requests(params: dict[str, dict[str, Any]]) -> list[Any]:
    return [{"custom_id": cid, "params": p} for cid, p in params.items()]


def create_batch(emulator: EmulatorServer, requests: list[Any], *, beta: bool, mode: str) -> str:
    """Create through the real SDK, sync or async; the beta resource names a beta."""
    extra: dict[str, Any] = {"betas": MCP_BETA} if beta else {}
    if mode == "sync":
        with make_client(emulator) as client:
            batches: Any = client.beta.messages.batches if beta else client.messages.batches
            return str(batches.create(requests=requests, **extra).id)

    async def create() -> str:
        async with make_async_client(emulator) as client:
            batches: Any = client.beta.messages.batches if beta else client.messages.batches
            return str((await batches.create(requests=requests, **extra)).id)

    return asyncio.run(create())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("beta", [False, True], ids=["params", "beta-params"])
def test_validation__every_sdk_param_and_tool_kind_is_accepted(
    emulator: EmulatorServer, beta: bool, mode: str
) -> None:
    params = every_param(beta=beta)
    assert "param-output_config" in params and "tool-0" in params
    assert "param-mcp_servers" in params if beta else "param-mcp_servers" not in params

    batch_id = create_batch(emulator, _requests(params), beta=beta, mode=mode)
    end_processing(emulator)

    line_type = BetaMessageBatchIndividualResponse if beta else MessageBatchIndividualResponse
    results = results_of(emulator, batch_id, line_type, beta=beta)
    refused = {cid: r.error.error.message for cid, r in results.items() if r.type != "succeeded"}
    assert refused == {}
    assert len(results) == len(params)


def test_validation__beta_params_are_refused_on_the_non_beta_endpoint(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [
        {"custom_id": "mcp", "params": {**BASE, "mcp_servers": []}},
        {"custom_id": "ctx", "params": {**BASE, "context_management": {}}},
    ]

    batch = emulator_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    end_processing(emulator)

    results = results_of(emulator, batch.id, MessageBatchIndividualResponse, beta=False)
    assert results["mcp"].error.error.message == "mcp_servers: Extra inputs are not permitted"
    assert results["ctx"].error.error.type == "invalid_request_error"


def test_validation__beta_params_need_a_named_beta(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [{"custom_id": "mcp", "params": {**BASE, "mcp_servers": []}}]
    url = f"{emulator.base_url}/v1/messages/batches?beta=true"

    # No betas: the SDK's beta resource sends a plain request, refused as such.
    plain = emulator_client.beta.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    with httpx2.Client() as http:
        unnamed = http.post(url, headers=API_HEADERS, json={"requests": requests}).json()
    end_processing(emulator)

    results = results_of(emulator, plain.id, BetaMessageBatchIndividualResponse, beta=True)
    assert results["mcp"].error.error.message == "mcp_servers: Extra inputs are not permitted"
    results = results_of(emulator, unnamed["id"], BetaMessageBatchIndividualResponse, beta=True)
    assert results["mcp"].error.error.message.startswith("mcp_servers: needs its beta named")


RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "thinking budget below 1024",
        {"thinking": {"type": "enabled", "budget_tokens": 512}},
        "thinking.budget_tokens: Input should be greater than or equal to 1024",
    ),
    (
        "thinking budget equal to max_tokens",
        {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 2048}},
        "max_tokens: must be greater than thinking.budget_tokens",
    ),
    (
        "thinking with tool_choice any",
        {
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
        },
        "tool_choice: Thinking may not be enabled when tool_choice forces tool use",
    ),
    (
        "thinking with tool_choice tool",
        {
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "t"},
        },
        "tool_choice: Thinking may not be enabled",
    ),
    (
        "custom tool without input_schema",
        {"tools": [{"name": "t"}]},
        "tools.0.input_schema: Field required",
    ),
    (
        "custom tool without name",
        {"tools": [{"input_schema": {"type": "object"}}]},
        "tools.0.name: Field required",
    ),
    (
        "unknown tool type",
        {"tools": [{"type": "teleport_20990101"}]},
        "tools.0.type: Input tag 'teleport_20990101' does not match any of the expected tags",
    ),
    (
        "max_tokens over the family's ceiling",
        {"model": "claude-3-5-haiku-20241022", "max_tokens": 8193},
        "max_tokens: 8193 > 8192, which is the maximum allowed number of output tokens",
    ),
    (
        "max_tokens zero in a batch",
        {"max_tokens": 0},
        "max_tokens: Input should be greater than or equal to 1",
    ),
    ("stream in a batch", {"stream": True}, "stream: Input should be False"),
    (
        "a param the SDK does not type",
        {"temperature": 0.5},
        "temperature: Extra inputs are not permitted",
    ),
    (
        "a text block without text",
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages.0.content.0.text: Field required",
    ),
    (
        "a tool_choice naming no tool",
        {
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "u"},
        },
        "tool_choice.name: Tool 'u' not found in tools",
    ),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_validation__each_cross_field_rule_errors_the_request_naming_the_field(
    emulator: EmulatorServer, mode: str
) -> None:
    requests = [
        {"custom_id": f"rule-{i}", "params": {**BASE, **change}}
        for i, (_, change, _) in enumerate(RULES)
    ]
    requests.append({"custom_id": "ok", "params": {**BASE, "thinking": CURATED["thinking"]}})

    batch_id = create_batch(emulator, requests, beta=False, mode=mode)
    end_processing(emulator)

    results = results_of(emulator, batch_id, MessageBatchIndividualResponse, beta=False)
    assert results["ok"].type == "succeeded"
    for i, (name, _, expected) in enumerate(RULES):
        result = results[f"rule-{i}"]
        assert result.type == "errored", name
        assert result.error.error.type == "invalid_request_error", name
        assert result.error.error.message.startswith(expected), (name, result.error.error.message)


@pytest.mark.parametrize(
    "change",
    [
        {"tools": [{"type": "browser_toolset_20260801"}]},
        {"tools": [{"type": "computer_toolset_20260801"}]},
        {
            "thinking": {"type": "adaptive"},
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
        },
        {"model": "claude-opus-4-6", "max_tokens": 128_000},
        {"model": "claude-opus-5", "max_tokens": 300_000},
    ],
)
def test_validation__documented_shapes_pass(change: dict[str, Any]) -> None:
    assert params_error({**BASE, **change}) is None


def test_validation__every_beta_batch_endpoint_answers_the_sdks_beta_types(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    beta = emulator_client.beta.messages.batches
    requests: Any = [{"custom_id": "mcp", "params": {**BASE, "mcp_servers": []}}]

    created = beta.create(requests=requests, betas=MCP_BETA)
    doomed = beta.create(requests=requests, betas=MCP_BETA)
    canceling = beta.cancel(doomed.id, betas=MCP_BETA)
    end_processing(emulator)
    listed = beta.list(limit=5, betas=MCP_BETA)
    retrieved = beta.retrieve(created.id, betas=MCP_BETA)
    (result,) = list(beta.results(created.id, betas=MCP_BETA))
    deleted = beta.delete(doomed.id, betas=MCP_BETA)

    for batch in (created, canceling, retrieved, *listed.data):
        assert type(batch).__name__ == "BetaMessageBatch"
        BetaMessageBatch.model_validate_json(batch.model_dump_json(), strict=True)
    assert canceling.processing_status == "canceling"
    assert type(result).__name__ == "BetaMessageBatchIndividualResponse"
    assert result.result.type == "succeeded"
    BetaMessage.model_validate_json(result.result.message.model_dump_json(), strict=True)
    assert deleted.type == "message_batch_deleted"
