"""Prompt-cache prefixes: which requests share one, and the 1-hour rewrite for priming.

The API caches a request's prefix up to its last `cache_control` breakpoint,
in the order tools, system, messages, per model. Requests with the same
prefix can read one cache entry, so batchline groups them by a hash of it.
The hash ignores each breakpoint's `ttl`: priming rewrites them all to 1 h.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson


def _elements(params: Mapping[str, Any]) -> Iterator[Any]:
    """Every element a breakpoint can sit on, in the API's caching order."""
    tools = params.get("tools")
    if isinstance(tools, list):
        yield from tools
    system = params.get("system")
    if isinstance(system, list):
        yield from system
    elif system is not None:
        yield system
    for message in params.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            yield from content
        else:
            yield content


def _is_breakpoint(element: Any) -> bool:
    return isinstance(element, Mapping) and isinstance(element.get("cache_control"), Mapping)


def _without_ttl(element: Any) -> Any:
    if not _is_breakpoint(element):
        return element
    control = {k: v for k, v in element["cache_control"].items() if k != "ttl"}
    return {**element, "cache_control": control}


def prefix_hash(params: Mapping[str, Any]) -> str | None:
    """A hash naming the request's cacheable prefix, or None when it has no breakpoint."""
    elements = list(_elements(params))
    marks = [i for i, e in enumerate(elements) if _is_breakpoint(e)]
    if not marks:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(params.get("model")).encode())
    for element in elements[: marks[-1] + 1]:
        digest.update(orjson.dumps(_without_ttl(element), option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def with_hour_breakpoints(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy whose every breakpoint caches for 1 hour (the API wants 1 h ones first;
    making them all 1 h keeps that order valid)."""
    rewritten = copy.deepcopy(dict(params))
    for element in _elements(rewritten):
        if _is_breakpoint(element):
            element["cache_control"] = {**element["cache_control"], "ttl": "1h"}
    return rewritten
