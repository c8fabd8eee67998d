"""A finished `Message` replayed as the Messages API's server-sent events.

The API's order: `message_start` (the message with no content yet), a `ping`,
then per content block `content_block_start`, its deltas and
`content_block_stop`, then `message_delta` (stop reason and final usage) and
`message_stop`. Text, thinking and tool input arrive in pieces; result blocks
of server tools arrive whole in their start event, as the API sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

PIECE_CHARS = 24  # the size of each text / thinking / JSON delta


def events(message: dict[str, Any]) -> Iterator[bytes]:
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    start_usage.pop("server_tool_use", None)
    yield _event(
        "message_start",
        {
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            }
        },
    )
    yield _event("ping", {})
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    delta_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    yield _event("message_delta", {"delta": delta, "usage": delta_usage})
    yield _event("message_stop", {})


def _block_events(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block["type"]
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        deltas += [{"type": "citations_delta", "citation": c} for c in block.get("citations") or ()]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind in ("tool_use", "server_tool_use"):
        start = {**block, "input": {}}
        partial = orjson.dumps(block["input"]).decode() if block["input"] else ""
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(partial) or [""]]
    else:
        start, deltas = block, []
    yield _event("content_block_start", {"index": index, "content_block": start})
    for delta in deltas:
        yield _event("content_block_delta", {"index": index, "delta": delta})
    yield _event("content_block_stop", {"index": index})


def _pieces(text: str) -> list[str]:
    return [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]


def _event(name: str, data: dict[str, Any]) -> bytes:
    body = orjson.dumps({"type": name, **data})
    return b"event: " + name.encode() + b"\ndata: " + body + b"\n\n"
