"""The synchronous Messages API: replies, SSE streaming, token counting, faults, keys, ledger."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import Message
from anthropic.types.beta import BetaMessage

from batchline.emulator import EmulatorServer, FaultConfig
from tests.emulator.helpers import API_HEADERS, MODEL
from tests.emulator.sdk_examples import BASE, MCP_BETA, every_param
from tests.emulator_fixtures import make_async_client, make_client

pytestmark = [pytest.mark.emulator, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

FEATURES: dict[str, Any] = {
    **BASE,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tools": [
        {"type": "web_search_20250305", "name": "web_search"},
        {
            "name": "lookup",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {
                        "type": "text",
                        "media_type": "text/plain",
                        "data": "Grass is green.",
                    },
                    "citations": {"enabled": True},
                },
                {"type": "text", "text": "What colour is grass? Use lookup."},
            ],
        }
    ],
}
EVENT_ORDER = ["message_start", "ping", "content_block_start"]


def _strict(message: Any, model: type[Message] | type[BetaMessage] = Message) -> Any:
    return model.model_validate_json(message.model_dump_json(), strict=True)


def test_messages__every_sdk_param_gets_a_strictly_valid_reply(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    for name, params in every_param(beta=False).items():
        message = emulator_client.messages.create(**params)
        assert _strict(message).usage.service_tier == "standard", name
    for name, params in every_param(beta=True).items():
        beta = emulator_client.beta.messages.create(**{**params, "betas": MCP_BETA})
        assert _strict(beta, BetaMessage).type == "message", name


def test_messages__invalid_params_are_a_400_naming_the_field(
    emulator_client: anthropic.Anthropic,
) -> None:
    bad = {**BASE, "thinking": {"type": "enabled", "budget_tokens": 512}}

    with pytest.raises(anthropic.BadRequestError) as caught:
        emulator_client.messages.create(**bad)

    assert caught.value.status_code == 400
    assert "thinking.budget_tokens" in str(caught.value)


def test_messages__max_tokens_zero_only_prewarms(emulator_client: anthropic.Anthropic) -> None:
    message = emulator_client.messages.create(**{**BASE, "max_tokens": 0})

    assert message.content == [] and message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 0


def test_messages__a_stream_is_the_apis_event_order_and_the_same_reply(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    url = f"{emulator.base_url}/v1/messages"
    with httpx2.Client() as http:
        raw = http.post(url, headers=API_HEADERS, json={**FEATURES, "stream": True})
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]

    with emulator_client.messages.stream(**FEATURES) as stream:
        streamed = stream.get_final_message()
    plain = emulator_client.messages.create(**FEATURES)

    assert raw.headers["content-type"] == "text/event-stream"
    assert names[:3] == EVENT_ORDER and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 5
    assert [b.type for b in plain.content] == [
        "thinking",
        "server_tool_use",
        "web_search_tool_result",
        "text",
        "tool_use",
    ]
    assert plain.content[3].citations
    assert [_plain(b.to_dict()) for b in streamed.content] == [b.to_dict() for b in plain.content]
    assert streamed.usage == plain.usage and streamed.stop_reason == plain.stop_reason


def _plain(block: dict[str, Any]) -> dict[str, Any]:
    """A streamed text block as the SDK parses it, less the field its parser adds."""
    return {k: v for k, v in block.items() if k != "parsed_output"}


def test_messages__async_create_and_stream(emulator: EmulatorServer) -> None:
    async def run() -> tuple[Message, Message]:
        async with make_async_client(emulator) as client:
            plain = await client.messages.create(**FEATURES)
            async with client.messages.stream(**FEATURES) as stream:
                streamed = await stream.get_final_message()
            return plain, streamed

    plain, streamed = asyncio.run(run())

    assert _strict(plain).content[0].type == "thinking"
    assert streamed.usage == plain.usage


def test_messages__count_tokens_matches_the_replys_input_usage(
    emulator_client: anthropic.Anthropic,
) -> None:
    params = {k: v for k, v in FEATURES.items() if k != "max_tokens"}

    counted = emulator_client.messages.count_tokens(**params)
    beta = emulator_client.beta.messages.count_tokens(**params)
    message = emulator_client.messages.create(**FEATURES)

    assert counted.input_tokens == beta.input_tokens == message.usage.input_tokens
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        emulator_client.messages.count_tokens(model=MODEL, messages="hi")  # type: ignore[arg-type]


def test_messages__charged_at_full_price_in_the_ledger(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    message = emulator_client.messages.create(**BASE)
    with emulator_client.messages.stream(**BASE) as stream:
        streamed = stream.get_final_message()

    ledger = emulator.records().messages

    assert [entry["id"] for entry in ledger] == [message.id, streamed.id]
    assert [entry["stream"] for entry in ledger] == [False, True]
    assert all(entry["price_multiplier"] == 1.0 for entry in ledger)
    assert ledger[0]["usage"] == orjson.loads(message.usage.model_dump_json(exclude_none=True))
    assert emulator.admin().records().messages == ledger


def test_messages__faults_and_keys_apply(emulator_factory: Any) -> None:
    emulator = emulator_factory(
        api_key="right",
        faults=FaultConfig(scripted_errors={"messages": [529], "count_tokens": [500]}),
    )
    with make_client(emulator, api_key="right", max_retries=0) as client:
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(**BASE)
        with pytest.raises(anthropic.InternalServerError):
            client.messages.count_tokens(model=MODEL, messages=BASE["messages"])
        assert client.messages.create(**BASE).type == "message"
    with (
        make_client(emulator, api_key="wrong", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError),
    ):
        client.messages.create(**BASE)
