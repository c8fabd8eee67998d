"""Replies shaped like the API's for each feature a request turns on, and deterministic."""

from __future__ import annotations

from typing import Any

import anthropic
import jsonschema
import orjson
import pytest
from anthropic.types import Message

from batchline.emulator import EmulatorServer
from tests.emulator.helpers import by_custom_id, ended, fetch_results, question

pytestmark = pytest.mark.emulator

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 3},
        "age": {"type": "integer", "minimum": 18},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "tags", "address"],
    "additionalProperties": False,
}
DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green."},
    "title": "Facts",
    "citations": {"enabled": True},
}
WEATHER = {"name": "get_weather", "input_schema": {"type": "object"}}


def _messages(
    emulator: EmulatorServer, client: anthropic.Anthropic, requests: dict[str, dict[str, Any]]
) -> dict[str, Message]:
    batch = client.messages.batches.create(
        requests=[question(cid, "What colour is grass?", **p) for cid, p in requests.items()]
    )
    ended(emulator, client, batch.id)
    results = by_custom_id(fetch_results(emulator, batch.id))
    return {k: r.result.message for k, r in results.items()}  # type: ignore[union-attr]


def test_features__each_feature_shapes_the_reply(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    requests: dict[str, dict[str, Any]] = {
        "json": {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        "thinking": {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
        "omitted": {
            "thinking": {"type": "enabled", "budget_tokens": 1024, "display": "omitted"},
            "max_tokens": 2048,
        },
        "cited": {
            "messages": [
                {"role": "user", "content": [DOCUMENT, {"type": "text", "text": "Colour?"}]}
            ]
        },
        "search": {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        "fetch": {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]},
        "forced": {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}},
        "none": {
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "none"},
        },
    }

    messages = _messages(emulator, emulator_client, requests)

    jsonschema.validate(orjson.loads(messages["json"].content[0].text), SCHEMA)  # type: ignore[union-attr]
    thought = messages["thinking"].content[0]
    assert thought.type == "thinking" and thought.thinking and thought.signature
    assert messages["thinking"].content[1].type == "text"
    assert messages["thinking"].usage.output_tokens <= 2048
    omitted = messages["omitted"].content[0]
    assert omitted.type == "thinking" and omitted.thinking == "" and omitted.signature
    cited = messages["cited"].content[0]
    assert cited.type == "text"
    assert cited.citations is not None and len(cited.citations) == 1
    citation = cited.citations[0]
    assert citation.type == "char_location" and citation.cited_text == "The grass is green."
    assert citation.document_index == 0 and citation.document_title == "Facts"
    search = messages["search"]
    assert [b.type for b in search.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert search.content[1].tool_use_id == search.content[0].id  # type: ignore[union-attr]
    assert search.usage.server_tool_use is not None
    assert search.usage.server_tool_use.web_search_requests == 1
    assert messages["fetch"].usage.server_tool_use.web_fetch_requests == 1  # type: ignore[union-attr]
    assert [b.type for b in messages["forced"].content] == ["tool_use"]
    assert messages["forced"].stop_reason == "tool_use"
    assert [b.type for b in messages["none"].content] == ["text"]
    assert messages["none"].usage.server_tool_use is None


def test_features__replies_are_deterministic(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    params = {
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"type": "code_execution_20250825", "name": "code_execution"}],
    }

    first = _messages(emulator, emulator_client, {"a": params})["a"]
    second = _messages(emulator, emulator_client, {"a": params})["a"]

    assert first.content == second.content
    assert first.usage == second.usage
    assert [b.type for b in first.content] == [
        "thinking",
        "server_tool_use",
        "bash_code_execution_tool_result",
        "text",
    ]
