"""Minimal valid values for the SDK's request types, generated from the types at run time.

So the tests drive every parameter and tool kind the installed SDK names,
including ones a newer SDK adds, without a copied list.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pydantic
import typing_extensions as te
from anthropic.types import message_create_params as create_params
from anthropic.types.beta import message_create_params as beta_create_params

from tests.emulator.helpers import MODEL

_WRAPPERS: tuple[Any, ...] = (te.Annotated, te.Required, te.NotRequired)
_UNIONS: tuple[Any, ...] = (typing.Union, types.UnionType)
_LITERALS: tuple[Any, ...] = (te.Literal, typing.Literal)
_LISTS = ("Iterable", "Sequence", "list", "SequenceNotStr")
_SCALARS: dict[Any, object] = {str: "example", int: 1, float: 0.5, bool: False}


def _origin(hint: Any) -> Any:
    return te.get_origin(hint)


def params_type(beta: bool) -> Any:
    return (beta_create_params if beta else create_params).MessageCreateParamsNonStreaming


def param_hints(beta: bool) -> dict[str, Any]:
    return te.get_type_hints(params_type(beta), include_extras=True)


def tool_types(beta: bool) -> list[Any]:
    """Each member of the `tools` item union: one per tool kind."""
    (item,) = te.get_args(_bare(param_hints(beta)["tools"]))
    return list(te.get_args(item))


def example(tp: Any) -> Any:
    tp = _bare(tp)
    origin, args = te.get_origin(tp), te.get_args(tp)
    if origin in _UNIONS:
        usable = [a for a in args if a is not type(None) and not _is_model(a)]
        return example(usable[0])
    if origin in _LITERALS:
        return args[0]
    if te.is_typeddict(tp):
        hints = te.get_type_hints(tp, include_extras=True)
        return {
            name: example(hint)
            for name, hint in hints.items()
            if _origin(hint) is te.Required or name in tp.__required_keys__
        }
    if args and getattr(origin, "__name__", "") in _LISTS:
        return [example(args[0])]
    if origin is dict or tp in (dict, object):
        return {}
    if tp in _SCALARS:
        return _SCALARS[tp]
    raise AssertionError(f"no example for {tp!r}")


BASE: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 2048,
    "messages": [{"role": "user", "content": "Hello"}],
}
# Values the generated minimum would break a cross-field rule with.
CURATED: dict[str, Any] = {
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "model": MODEL,
    "max_tokens": 2048,
}
MCP_BETA = ["mcp-client-2025-11-20"]


def every_param(beta: bool) -> dict[str, dict[str, Any]]:
    """custom_id -> params: the base plus one parameter of the SDK's types, each."""
    requests = {}
    for name, hint in sorted(param_hints(beta).items()):
        requests[f"param-{name}"] = {**BASE, name: CURATED.get(name, example(hint))}
    for index, tool in enumerate(tool_types(beta)):
        requests[f"tool-{index}"] = {**BASE, "tools": [example(tool)]}
    return requests


def _bare(tp: Any) -> Any:
    while te.get_origin(tp) in _WRAPPERS:
        tp = te.get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)
