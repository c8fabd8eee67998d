"""Deterministic benchmark data: request bodies and result lines of realistic size.

A request is about 1.5 KB (100,000 make the ~150 MB of the issue) and a
result line about 1.4 KB (100,000 make ~140 MB). Text is cut from one seeded
pool, so generating them costs little next to what is measured.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from batchline.domain.custom_ids import encode_custom_id

MODEL = "claude-haiku-4-5"
PROMPT_CHARS = 1_400
REPLY_CHARS = 940
_WORDS = [
    "batch",
    "queue",
    "result",
    "token",
    "model",
    "cache",
    "prompt",
    "stream",
    "worker",
    "beat",
    "redis",
    "table",
    "row",
    "commit",
    "index",
    "lease",
    "retry",
    "expire",
    "cancel",
    "poll",
    "submit",
    "ingest",
    "answer",
    "question",
    "summary",
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "that",
    "it",
    "be",
    "are",
]


def text_pool(seed: int = 7, size: int = 1 << 20) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


_POOL = text_pool()


def _slice(index: int, chars: int) -> str:
    start = (index * 7_919) % (len(_POOL) - chars)
    return _POOL[start : start + chars]


def request_params(index: int) -> dict[str, Any]:
    """A Messages API request body of about 1.5 KB once encoded."""
    return {
        "model": MODEL,
        "max_tokens": 512,
        "messages": [
            {"role": "user", "content": f"Item {index}: summarise: {_slice(index, PROMPT_CHARS)}"}
        ],
    }


def request_bodies(count: int) -> list[dict[str, Any]]:
    return [request_params(i) for i in range(count)]


def result_line(request_id: str, attempt: int, index: int) -> bytes:
    """One results line in the API's shape: mostly succeeded, a few errored or expired."""
    custom_id = encode_custom_id(request_id, attempt)
    kind = index % 100
    result: dict[str, Any]
    if kind == 98:
        result = {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            },
        }
    elif kind == 99:
        result = {"type": "expired"}
    else:
        result = {
            "type": "succeeded",
            "message": {
                "id": f"msg_bench{index:018d}",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": _slice(index + 1, REPLY_CHARS)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 380 + index % 50,
                    "output_tokens": 250 + index % 40,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 0,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "service_tier": "batch",
                },
            },
        }
    return orjson.dumps({"custom_id": custom_id, "result": result})


def write_results_file(path: Path, members: list[tuple[str, int]]) -> int:
    """Write the JSONL results of `members` (request id, attempt); returns its size."""
    with path.open("wb") as out:
        for index, (request_id, attempt) in enumerate(members):
            out.write(result_line(request_id, attempt, index))
            out.write(b"\n")
        return out.tell()


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The file in `size` chunks, as an HTTP body would arrive."""
    with path.open("rb") as src:
        while chunk := src.read(size):
            yield chunk
