"""Reading a request's params: its text, its images, its size in tokens, its cached prefix.

Tokens are estimated (about four characters each, a flat cost per image), which
is all a consumer of `usage` can rely on anyway: counts grow with the request.
The prompt-cache prefix follows the API's rule: everything up to the last
`cache_control` breakpoint, in the order tools, system, messages; prefixes
shorter than `MIN_CACHEABLE_TOKENS` are not cached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

MIN_CACHEABLE_TOKENS = 1024
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
_BASE_TOKENS = 7
_PER_MESSAGE_TOKENS = 3


@dataclass(frozen=True)
class CachePrefix:
    key: bytes
    tokens: int
    tokens_1h: int
    ttl_seconds: float


@dataclass
class PromptFacts:
    model: str
    max_tokens: int
    last_user_text: str = ""
    system_text: str = ""
    images: list[str] = field(default_factory=list)
    documents: int = 0
    turns: int = 0
    ends_with_assistant: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: dict[str, Any] | None = None
    stop_sequences: list[str] = field(default_factory=list)
    input_tokens: int = _BASE_TOKENS
    cache: CachePrefix | None = None


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def read_prompt(params: dict[str, Any]) -> PromptFacts:
    facts = PromptFacts(model=str(params["model"]), max_tokens=int(params["max_tokens"]))
    choice = params.get("tool_choice")
    facts.tool_choice = choice if isinstance(choice, dict) else None
    facts.stop_sequences = list(params.get("stop_sequences") or [])
    segments = _segments(params, facts)
    facts.input_tokens += sum(tokens for tokens, _, _ in segments)
    facts.cache = _cache_prefix(params, segments)
    return facts


def cache_prefix(params: dict[str, Any]) -> CachePrefix | None:
    """The cached prefix of a request, or None (cheap to skip: see `mentions_cache`)."""
    facts = PromptFacts(model=str(params.get("model")), max_tokens=1)
    return _cache_prefix(params, _segments(params, facts))


def mentions_cache(raw_params: bytes) -> bool:
    return b'"cache_control"' in raw_params


# A segment: (tokens, the element itself, its cache_control ttl if it is a breakpoint).
Segment = tuple[int, object, str | None]


def _segments(params: dict[str, Any], facts: PromptFacts) -> list[Segment]:
    segments: list[Segment] = []
    facts.tools = [t for t in params.get("tools") or [] if isinstance(t, dict)]
    for tool in facts.tools:
        segments.append((text_tokens(orjson.dumps(tool).decode()), tool, _ttl(tool)))
    system = params.get("system")
    if isinstance(system, str):
        facts.system_text = system
        segments.append((text_tokens(system), system, None))
    elif isinstance(system, list):
        facts.system_text = " ".join(b.get("text", "") for b in system if isinstance(b, dict))
        segments.extend(_block_segment(block, facts) for block in system)
    for message in params.get("messages") or []:
        segments.extend(_message_segments(message, facts))
    if segments and _ttl(params) is not None:
        tokens, element, _ = segments[-1]
        segments[-1] = (tokens, element, _ttl(params))
    return segments


def _message_segments(message: dict[str, Any], facts: PromptFacts) -> list[Segment]:
    facts.turns += 1
    facts.input_tokens += _PER_MESSAGE_TOKENS
    role, content = message.get("role"), message.get("content")
    facts.ends_with_assistant = role == "assistant"
    if isinstance(content, str):
        if role == "user":
            facts.last_user_text = content
        return [(text_tokens(content), content, None)]
    blocks = [b for b in content or [] if isinstance(b, dict)]
    if role == "user":
        texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
        facts.last_user_text = " ".join(t for t in texts if isinstance(t, str))
        facts.images = [_image_label(b) for b in blocks if b.get("type") == "image"]
        facts.documents = sum(1 for b in blocks if b.get("type") == "document")
    return [_block_segment(block, facts) for block in blocks]


def _block_segment(block: object, facts: PromptFacts) -> Segment:
    if not isinstance(block, dict):
        return (1, block, None)
    kind = block.get("type")
    if kind == "text":
        tokens = text_tokens(str(block.get("text", "")))
    elif kind == "image":
        tokens = _image_tokens(block)
    else:
        tokens = text_tokens(orjson.dumps(block).decode())
    return (tokens, block, _ttl(block))


def _image_tokens(block: dict[str, Any]) -> int:
    source = block.get("source")
    data = source.get("data") if isinstance(source, dict) else None
    encoded = len(data) if isinstance(data, str) else 0
    return min(1600, 85 + (encoded * 3 // 4) // 64)


def _image_label(block: dict[str, Any]) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        return "image"
    if source.get("type") == "base64":
        data = source.get("data")
        size = len(data) * 3 // 4 if isinstance(data, str) else 0
        return f"{source.get('media_type', 'image')}, about {size:,} bytes"
    return f"{source.get('type', 'image')} image"


def _ttl(element: object) -> str | None:
    if not isinstance(element, dict):
        return None
    control = element.get("cache_control")
    if not isinstance(control, dict):
        return None
    ttl = control.get("ttl", "5m")
    return ttl if ttl in TTL_SECONDS else "5m"


def _cache_prefix(params: dict[str, Any], segments: list[Segment]) -> CachePrefix | None:
    marks = [i for i, (_, _, ttl) in enumerate(segments) if ttl is not None]
    if not marks:
        return None
    last = marks[-1]
    tokens = sum(t for t, _, _ in segments[: last + 1])
    if tokens < MIN_CACHEABLE_TOKENS:
        return None
    hour_marks = [i for i in marks if segments[i][2] == "1h"]
    tokens_1h = sum(t for t, _, _ in segments[: hour_marks[-1] + 1]) if hour_marks else 0
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(params.get("model")).encode())
    for _, element, _ in segments[: last + 1]:
        digest.update(orjson.dumps(element, option=orjson.OPT_SORT_KEYS))
    ttl = max(TTL_SECONDS[str(segments[i][2])] for i in marks)
    return CachePrefix(key=digest.digest(), tokens=tokens, tokens_1h=tokens_1h, ttl_seconds=ttl)
