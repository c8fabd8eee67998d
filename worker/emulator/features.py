"""The content blocks a request's features turn on, shaped as the API's.

Extended thinking gives a `thinking` block with a signature; server tools give
a `server_tool_use` block and its result block (and count in `usage`); a JSON
schema output format makes the text a JSON value that validates against the
schema; documents that enable citations get cited. All deterministic: derived
from the params' digest.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from .ids import derived_id

Block = dict[str, Any]
_SERVER_TOOLS: dict[str, str] = {  # tool type prefix -> the server tool's name
    "web_search_": "web_search",
    "web_fetch_": "web_fetch",
    "code_execution_20250522": "code_execution",
    "code_execution_": "bash_code_execution",
    "tool_search_tool_regex": "tool_search_tool_regex",
    "tool_search_tool_bm25": "tool_search_tool_bm25",
}
_CITED_CHARS = 80


@dataclass
class ServerUse:
    blocks: list[Block] = field(default_factory=list)
    web_search_requests: int = 0
    web_fetch_requests: int = 0

    def usage(self) -> dict[str, int] | None:
        if not (self.web_search_requests or self.web_fetch_requests):
            return None
        return {
            "web_search_requests": self.web_search_requests,
            "web_fetch_requests": self.web_fetch_requests,
        }


def thinking_block(params: dict[str, Any], digest: bytes, question: str) -> Block | None:
    thinking = params.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    text = "" if thinking.get("display") == "omitted" else _thought(question, thinking)
    signature = base64.b64encode(b"emulated-signature:" + digest[:24]).decode()
    return {"type": "thinking", "thinking": text, "signature": signature}


def _thought(question: str, thinking: dict[str, Any]) -> str:
    text = f"The user asks: {question[:200]!r}. Let me work through it step by step."
    budget = thinking.get("budget_tokens")
    return text[: budget * 4] if isinstance(budget, int) else text


def server_tools(params: dict[str, Any], digest: bytes, question: str) -> ServerUse:
    """One call of each server tool the request offers (none if tool_choice is `none`)."""
    used = ServerUse()
    choice = params.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return used
    for tool in params.get("tools") or ():
        name = _server_name(str(tool.get("type", "")))
        if name is None:
            continue
        use_id = derived_id("srvtoolu", digest, name.encode())
        tool_input, result = _server_call(name, use_id, question)
        used.blocks += [
            {"type": "server_tool_use", "id": use_id, "name": name, "input": tool_input},
            result,
        ]
        used.web_search_requests += name == "web_search"
        used.web_fetch_requests += name == "web_fetch"
    return used


def _server_name(tool_type: str) -> str | None:
    for prefix, name in _SERVER_TOOLS.items():
        if tool_type.startswith(prefix):
            return name
    return None


def _server_call(name: str, use_id: str, question: str) -> tuple[dict[str, Any], Block]:
    query = question[:100] or "emulated query"
    url = "https://example.com/emulated"
    if name == "web_search":
        found = {
            "type": "web_search_result",
            "url": url,
            "title": "Emulated search result",
            "encrypted_content": base64.b64encode(query.encode()).decode(),
            "page_age": None,
        }
        content: Any = [found]
        return {"query": query}, _result("web_search_tool_result", use_id, content)
    if name == "web_fetch":
        document = {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Emulated page."},
            "title": "Emulated page",
            "citations": None,
        }
        content = {
            "type": "web_fetch_result",
            "url": url,
            "content": document,
            "retrieved_at": None,
        }
        return {"url": url}, _result("web_fetch_tool_result", use_id, content)
    if name in ("code_execution", "bash_code_execution"):
        kind = "code_execution_result" if name == "code_execution" else "bash_code_execution_result"
        content = {
            "type": kind,
            "stdout": "emulated\n",
            "stderr": "",
            "return_code": 0,
            "content": [],
        }
        key = "code" if name == "code_execution" else "command"
        return {key: "print('emulated')"}, _result(f"{name}_tool_result", use_id, content)
    content = {"type": "tool_search_tool_search_result", "tool_references": []}
    return {"query": query}, _result("tool_search_tool_result", use_id, content)


def _result(kind: str, use_id: str, content: Any) -> Block:
    return {"type": kind, "tool_use_id": use_id, "content": content}


def json_schema(params: dict[str, Any]) -> dict[str, Any] | None:
    config = params.get("output_config")
    output_format = config.get("format") if isinstance(config, dict) else None
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        schema = output_format.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def json_text(schema: dict[str, Any]) -> str:
    return orjson.dumps(instance(schema)).decode()


def instance(schema: object, depth: int = 0) -> object:
    """A small value that validates against a JSON schema (the common keywords)."""
    if not isinstance(schema, dict) or depth > 8:
        return None if isinstance(schema, dict) and schema.get("type") == "null" else {}
    for keyword in ("const", "default"):
        if keyword in schema:
            return schema[keyword]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(keyword), list) and schema[keyword]:
            return instance(schema[keyword][0], depth + 1)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        required = schema.get("required")
        names = required if isinstance(required, list) else list(properties)
        return {str(n): instance(properties.get(n, {}), depth + 1) for n in names}
    if kind == "array":
        least = schema.get("minItems", 1)
        return [instance(schema.get("items", {}), depth + 1) for _ in range(max(1, least))]
    return _scalar(kind, schema)


def _scalar(kind: object, schema: dict[str, Any]) -> object:
    if kind == "string":
        least = schema.get("minLength", 0)
        return "emulated".ljust(least if isinstance(least, int) else 0, "x")
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return schema.get("minimum", 1.5)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "emulated"


def citations(params: dict[str, Any]) -> list[Block]:
    """Citations of the last user turn's documents that enable them."""
    found = []
    for index, document in enumerate(_documents(params)):
        config = document.get("citations")
        if isinstance(config, dict) and config.get("enabled"):
            found.append(_citation(index, document))
    return found


def _documents(params: dict[str, Any]) -> list[Block]:
    documents = []
    for message in params.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            documents += [b for b in content if isinstance(b, dict) and b.get("type") == "document"]
    return documents


def _citation(index: int, document: Block) -> Block:
    source = document.get("source") or {}
    common = {"document_index": index, "document_title": document.get("title"), "file_id": None}
    if source.get("type") == "text":
        text = str(source.get("data", ""))[:_CITED_CHARS]
        return {
            "type": "char_location",
            "cited_text": text,
            "start_char_index": 0,
            "end_char_index": len(text),
            **common,
        }
    if source.get("type") == "content":
        blocks = source.get("content")
        first = blocks[0] if isinstance(blocks, list) and blocks else blocks
        text = first.get("text", "") if isinstance(first, dict) else str(first or "")
        return {
            "type": "content_block_location",
            "cited_text": text[:_CITED_CHARS],
            "start_block_index": 0,
            "end_block_index": 1,
            **common,
        }
    return {
        "type": "page_location",
        "cited_text": "Emulated page text.",
        "start_page_number": 1,
        "end_page_number": 2,
        **common,
    }
