"""The generated replies: truncation, stop sequences, tools, token usage, prompt caching."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types import Message
from anthropic.types.messages.batch_create_params import Request

from batchline.emulator import EmulatorServer
from tests.emulator.helpers import by_custom_id, ended, fetch_results, question

pytestmark = pytest.mark.emulator

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit"],
    },
}
LONG_SYSTEM = "You are a meticulous assistant. " * 200  # about 1,600 tokens


def _messages(
    emulator: EmulatorServer, client: anthropic.Anthropic, requests: list[Request]
) -> dict[str, Message]:
    batch = client.messages.batches.create(requests=requests)
    ended(emulator, client, batch.id)
    results = by_custom_id(fetch_results(emulator, batch.id))
    return {k: r.result.message for k, r in results.items()}  # type: ignore[union-attr]


def _cached(custom_id: str, ttl: str | None = None, text: str = "Hello") -> Request:
    control: dict[str, str] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": control}]
    return question(custom_id, text, system=system)


def test_replies__max_tokens_truncates_with_stop_reason_max_tokens(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [question("short", "Tell me everything.", max_tokens=5), question("roomy", "Hi")]

    messages = _messages(emulator, emulator_client, requests)

    short = messages["short"]
    assert short.stop_reason == "max_tokens"
    assert short.usage.output_tokens == 5
    assert len(short.content[0].text) <= 20  # type: ignore[union-attr]
    assert messages["roomy"].stop_reason == "end_turn"


def test_replies__a_stop_sequence_in_the_text_stops_it(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [question("stop", "Say STOPHERE then more", stop_sequences=["STOPHERE"])]

    message = _messages(emulator, emulator_client, requests)["stop"]

    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "STOPHERE"
    assert "STOPHERE" not in message.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "tool_choice",
    [{"type": "tool", "name": "get_weather"}, {"type": "any"}],
    ids=["tool", "any"],
)
def test_replies__a_forced_tool_choice_yields_a_tool_use_block(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic, tool_choice: dict[str, str]
) -> None:
    requests = [question("t", "Weather?", tools=[WEATHER_TOOL], tool_choice=tool_choice)]

    message = _messages(emulator, emulator_client, requests)["t"]

    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "get_weather"
    assert block.input == {"city": "emulated", "unit": "celsius"}


def test_replies__auto_tool_choice_uses_a_tool_only_when_asked_for_by_name(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [
        question("named", "Please call get_weather for Paris", tools=[WEATHER_TOOL]),
        question("plain", "What is the capital of France?", tools=[WEATHER_TOOL]),
    ]

    messages = _messages(emulator, emulator_client, requests)

    assert [b.type for b in messages["named"].content] == ["text", "tool_use"]
    assert messages["named"].stop_reason == "tool_use"
    assert [b.type for b in messages["plain"].content] == ["text"]


def test_replies__input_tokens_grow_with_the_request(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [question("small", "Hi"), question("large", "Hi " * 2000)]

    messages = _messages(emulator, emulator_client, requests)

    assert messages["large"].usage.input_tokens > messages["small"].usage.input_tokens + 1000


def test_prompt_cache__a_cold_batch_writes_and_its_requests_do_not_read_each_other(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests = [_cached("a", text="First"), _cached("b", text="Second")]

    messages = _messages(emulator, emulator_client, requests)

    for message in messages.values():
        usage = message.usage
        assert usage.cache_read_input_tokens == 0
        assert usage.cache_creation_input_tokens is not None
        assert usage.cache_creation_input_tokens >= 1024
        assert usage.cache_creation is not None
        assert usage.cache_creation.ephemeral_5m_input_tokens == usage.cache_creation_input_tokens
        assert usage.input_tokens < 20


def test_prompt_cache__a_later_batch_reads_within_the_ttl_and_writes_after_it(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    _messages(emulator, emulator_client, [_cached("w", ttl="1h")])
    emulator.clock.advance(1800)
    warm = _messages(emulator, emulator_client, [_cached("r", ttl="1h", text="Other")])["r"]
    emulator.clock.advance(2 * 3600)
    cold = _messages(emulator, emulator_client, [_cached("c", ttl="1h")])["c"]

    assert warm.usage.cache_read_input_tokens is not None
    assert warm.usage.cache_read_input_tokens >= 1024
    assert warm.usage.cache_creation_input_tokens == 0
    assert cold.usage.cache_read_input_tokens == 0
    assert cold.usage.cache_creation is not None
    assert cold.usage.cache_creation.ephemeral_1h_input_tokens >= 1024


def test_prompt_cache__the_5_minute_ttl_lapses(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    _messages(emulator, emulator_client, [_cached("w")])
    emulator.clock.advance(120)
    warm = _messages(emulator, emulator_client, [_cached("r")])["r"]
    emulator.clock.advance(600)
    cold = _messages(emulator, emulator_client, [_cached("c")])["c"]

    assert warm.usage.cache_read_input_tokens
    assert cold.usage.cache_read_input_tokens == 0 and cold.usage.cache_creation_input_tokens


def test_prompt_cache__a_short_prefix_is_not_cached(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]

    message = _messages(emulator, emulator_client, [question("s", "Hi", system=system)])["s"]

    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
