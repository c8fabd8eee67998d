"""Deterministic `Message` replies: the same params always get the same answer.

The text says what the request held (the last user text, images, a system
prompt, how many turns), then a few stock sentences picked by a hash of the
params. `max_tokens` truncates (stop_reason `max_tokens`), a stop sequence in
the text stops it, and a forced `tool_choice` yields a `tool_use` block. The
blocks that features turn on (thinking, server tools, JSON output, citations)
come from `features`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .features import ServerUse, citations, json_schema, json_text, server_tools, thinking_block
from .ids import derived_id
from .prompts import PromptFacts, text_tokens

_SENTENCES = (
    "The short answer depends on a few factors, which I will take in turn.",
    "First, it helps to separate what is known for certain from what is estimated.",
    "A concrete example usually makes the idea easier to hold on to.",
    "Most of the difficulty comes from the details rather than the principle.",
    "In practice the simplest approach that works is usually the right one.",
    "It is worth checking the assumptions before relying on the result.",
    "There are trade-offs here, and the best choice depends on your goals.",
    "Step by step: gather the inputs, apply the rule, then check the output.",
    "Historically this has been understood in several different ways.",
    "The same pattern shows up in many other fields as well.",
    "If you need more precision, the next step is to measure it directly.",
    "In summary, the key points are the cause, the effect and the exceptions.",
    "Think of it like a recipe: the order of the steps matters.",
    "Experts still debate some of the finer points of this question.",
    "A good rule of thumb is to start small and adjust as you learn more.",
    "Let me know if you would like me to go deeper into any part of this.",
)
_SNIPPET_CHARS = 160


def params_digest(raw_params: bytes) -> bytes:
    return hashlib.blake2b(raw_params, digest_size=32).digest()


def build_message(
    facts: PromptFacts,
    *,
    digest: bytes,
    message_id: str,
    long_chars: int = 0,
    cache_hit: bool = False,
    params: dict[str, Any] | None = None,
    service_tier: str = "batch",
) -> dict[str, Any]:
    params = params or {}
    content: list[dict[str, Any]] = []
    stop_reason, stop_sequence, output_tokens = "end_turn", None, 0
    server = ServerUse()
    if facts.max_tokens > 0:  # 0 only pre-warms the cache (Messages API)
        content, output_tokens, server = _lead_blocks(params, digest, facts)
        tool_call = _tool_call(facts, digest)
        forced = tool_call is not None and _tool_choice_type(facts) in ("any", "tool")
        if not forced:
            room = facts.max_tokens - output_tokens  # thinking counts against max_tokens
            text, stop_reason, stop_sequence = _text(params, facts, digest, long_chars, room)
            content.append(_text_block(text, params))
            output_tokens += text_tokens(text)
        if tool_call is not None and stop_reason == "end_turn":
            content.append(tool_call)
            stop_reason = "tool_use"
            output_tokens += text_tokens(str(tool_call["input"])) + 12
        output_tokens = max(1, output_tokens)
    else:
        stop_reason = "max_tokens"
    usage = _usage(facts, output_tokens, cache_hit, service_tier)
    if server.usage() is not None:
        usage["server_tool_use"] = server.usage()
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": facts.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def _lead_blocks(
    params: dict[str, Any], digest: bytes, facts: PromptFacts
) -> tuple[list[dict[str, Any]], int, ServerUse]:
    """Thinking, then server tool calls and their results: what comes before the answer."""
    blocks: list[dict[str, Any]] = []
    tokens = 0
    thought = thinking_block(params, digest, facts.last_user_text)
    if thought is not None:
        blocks.append(thought)
        tokens += text_tokens(thought["thinking"]) + 8
    server = server_tools(params, digest, facts.last_user_text)
    blocks += server.blocks
    tokens += 16 * len(server.blocks)
    return blocks, tokens, server


def _text(
    params: dict[str, Any], facts: PromptFacts, digest: bytes, long_chars: int, room: int
) -> tuple[str, str, str | None]:
    schema = json_schema(params)
    if schema is not None:  # structured output is never cut by stop sequences
        return json_text(schema), "end_turn", None
    return _finish(_reply_text(facts, digest, long_chars), facts, long_chars > 0, room)


def _text_block(text: str, params: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    cited = citations(params)
    if cited:
        block["citations"] = cited
    return block


def _reply_text(facts: PromptFacts, digest: bytes, long_chars: int) -> str:
    parts = [f"(Emulated reply from {facts.model}.)"]
    if facts.last_user_text:
        parts.append(f'You asked: "{_snippet(facts.last_user_text)}".')
    if facts.images:
        labels = "; ".join(facts.images)
        parts.append(f"I received {len(facts.images)} image(s) ({labels}) and looked at it.")
    if facts.documents:
        parts.append(f"I read the {facts.documents} document(s) you attached.")
    if facts.system_text:
        parts.append(f'Following your instructions: "{_snippet(facts.system_text)}".')
    if facts.turns > 1:
        parts.append(f"This continues a conversation of {facts.turns} messages.")
    count = 2 + digest[0] % 4
    parts.extend(_SENTENCES[digest[1 + i] % len(_SENTENCES)] for i in range(count))
    text = " ".join(parts)
    if long_chars > len(text):
        filler = " ".join(_SENTENCES)
        repeats = (long_chars - len(text)) // (len(filler) + 1) + 1
        text = (text + (" " + filler) * repeats)[:long_chars]
    return text


def _snippet(text: str) -> str:
    flat = " ".join(text[: _SNIPPET_CHARS * 2].split())
    return flat if len(flat) <= _SNIPPET_CHARS else flat[: _SNIPPET_CHARS - 1] + "…"


def _finish(
    text: str, facts: PromptFacts, unbounded: bool, room: int
) -> tuple[str, str, str | None]:
    """Apply stop sequences, then max_tokens (a long-reply fault ignores max_tokens)."""
    hits = [(text.find(s), s) for s in facts.stop_sequences if s in text]
    if hits:
        index, sequence = min(hits)
        return text[:index], "stop_sequence", sequence
    limit = max(0, room) * 4
    if not unbounded and len(text) > limit:
        return text[:limit], "max_tokens", None
    return text, "end_turn", None


def _tool_choice_type(facts: PromptFacts) -> str:
    choice = facts.tool_choice or {}
    return str(choice.get("type", "auto"))


def _tool_call(facts: PromptFacts, digest: bytes) -> dict[str, Any] | None:
    kind = _tool_choice_type(facts)
    tools = [t for t in facts.tools if isinstance(t.get("name"), str)]
    if not tools or kind == "none":
        return None
    if kind == "tool":
        chosen = [t for t in tools if t["name"] == (facts.tool_choice or {}).get("name")]
    elif kind == "any":
        chosen = [tools[digest[8] % len(tools)]]
    else:
        asked = facts.last_user_text.lower()
        chosen = [t for t in tools if t["name"].lower() in asked]
    if not chosen:
        return None
    tool = chosen[0]
    return {
        "type": "tool_use",
        "id": derived_id("toolu", digest, tool["name"].encode()),
        "name": tool["name"],
        "input": _stub_input(tool.get("input_schema")),
    }


_STUBS: dict[str, object] = {
    "string": "emulated",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


def _stub_input(schema: object) -> dict[str, object]:
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    names = required if isinstance(required, list) else list(properties)
    stub: dict[str, object] = {}
    for name in names:
        spec = properties.get(name)
        spec = spec if isinstance(spec, dict) else {}
        enum = spec.get("enum")
        stub[str(name)] = (
            enum[0]
            if isinstance(enum, list) and enum
            else _STUBS.get(str(spec.get("type")), "emulated")
        )
    return stub


def _usage(
    facts: PromptFacts, output_tokens: int, cache_hit: bool, service_tier: str
) -> dict[str, Any]:
    prefix = facts.cache
    created_5m = created_1h = read = 0
    if prefix is not None and cache_hit:
        read = prefix.tokens
    elif prefix is not None:
        created_1h = prefix.tokens_1h
        created_5m = prefix.tokens - prefix.tokens_1h
    cached = prefix.tokens if prefix is not None else 0
    return {
        "input_tokens": max(1, facts.input_tokens - cached),
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": created_5m + created_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": created_5m,
            "ephemeral_1h_input_tokens": created_1h,
        },
        "service_tier": service_tier,
    }
