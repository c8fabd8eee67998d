"""Checking JSON values against the installed SDK's request types, read at run time.

`checker(SomeTypedDict)` compiles the type (TypedDicts, unions, literals, lists,
dicts, scalars) once into a tree of small checks; a new SDK release is
covered without edits. A TypedDict refuses keys it does not declare, unless the
SDK marks it `extra: allow`; a union of TypedDicts is dispatched on its tag
(`type`, or `role` for messages), as the API's own validator does. Types the
JSON cannot hold (file handles, paths) accept anything: they never reach the
wire as such.

A check answers None, or `(path, message)` with messages worded as the API's
validator words them ("Field required", "Extra inputs are not permitted").
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
import typing_extensions as te

Path = tuple[str | int, ...]
Problem = tuple[Path, str]
Check = Callable[[object], Problem | None]
_TAGS = ("type", "role")
_UNIONS: tuple[Any, ...] = (typing.Union, types.UnionType)
_LITERALS: tuple[Any, ...] = (te.Literal, typing.Literal)
_SIMPLE_KINDS = frozenset({"dict", "list", "str", "int", "float", "bool", "null"})
# A JSON value's Python type name -> the node kinds that can accept it.
_ACCEPTS: dict[str, frozenset[str]] = {
    "dict": frozenset({"dict"}),
    "list": frozenset({"list"}),
    "str": frozenset({"str"}),
    "int": frozenset({"int", "float"}),
    "float": frozenset({"float"}),
    "bool": frozenset({"bool"}),
    "NoneType": frozenset({"null"}),
}
_LISTS = {list, collections.abc.Iterable, collections.abc.Sequence, tuple}
_DICTS = {dict, collections.abc.Mapping}


@dataclass
class Node:
    """A compiled type: its check, the JSON kind it wants, and its tags if a TypedDict."""

    kind: str  # "dict" | "list" | "str" | "int" | "float" | "bool" | "null" | "any"
    check: Check = field(default=lambda _: None)
    tags: dict[str, frozenset[object]] = field(default_factory=dict)  # required literal keys
    loose_tags: dict[str, frozenset[object]] = field(default_factory=dict)  # optional ones
    members: list[Node] = field(default_factory=list)  # of a union


def format_problem(problem: Problem) -> str:
    path, message = problem
    where = ".".join(str(part) for part in path)
    return f"{where}: {message}" if where else message


@functools.cache
def checker(tp: Any) -> Node:
    """The compiled check of `tp` (cached: compiling is slower than checking)."""
    return _Compiler().node(tp)


class _Compiler:
    def __init__(self) -> None:
        self._done: dict[int, Node] = {}

    def node(self, tp: Any) -> Node:
        origin = te.get_origin(tp)
        args = te.get_args(tp)
        if origin in (te.Annotated, te.Required, te.NotRequired, typing.ClassVar):
            return self.node(args[0])
        if tp is Any or tp is object:
            return Node("any")
        if origin in _UNIONS:
            return self._union([self.node(arg) for arg in args])
        if origin in _LITERALS:
            return _literal(args)
        if te.is_typeddict(tp):
            return self._typeddict(tp)
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            # Response models the SDK lets a caller pass back (a reply's content
            # blocks): on the wire they are their param TypedDicts' shape.
            return Node("model", lambda _: ((), "Input should be a valid dictionary"))
        if origin in _LISTS or getattr(origin, "__name__", "") == "SequenceNotStr":
            return _list(self.node(args[0]) if args else Node("any"))
        if origin in _DICTS or tp in _DICTS:
            return _mapping(self.node(args[1]) if len(args) == 2 else Node("any"))
        if tp in _LISTS:
            return _list(Node("any"))
        return _scalar(tp)

    def _typeddict(self, td: Any) -> Node:
        key = id(td)
        if key in self._done:
            return self._done[key]  # recursive types: the node is filled in below
        node = Node("dict")
        self._done[key] = node
        hints = te.get_type_hints(td, include_extras=True)
        fields: dict[str, Node] = {}
        required: list[str] = []
        for name, hint in hints.items():
            wire = _alias(hint) or name
            fields[wire] = self.node(hint)
            if _is_required(td, name, hint):
                required.append(wire)
        config = getattr(td, "__pydantic_config__", None) or {}
        node.check = _typeddict_check(fields, tuple(required), config.get("extra") == "allow")
        for name in _TAGS:
            values = _literal_values(hints.get(name))
            if values:
                (node.tags if name in required else node.loose_tags)[name] = values
        return node

    def _union(self, members: list[Node]) -> Node:
        members = [m for m in _flatten(members) if m.kind != "model"]
        if any(m.kind == "any" for m in members):
            return Node("any")
        kinds = {m.kind for m in members}
        tag = next((t for t in _TAGS if any(t in m.tags for m in members)), None)
        by_tag: dict[object, list[Node]] = {}
        untagged: list[Node] = []
        for member in members:
            if tag is not None and tag in member.tags:
                for value in member.tags[tag]:
                    by_tag.setdefault(value, []).append(member)
            else:
                untagged.append(member)
        node = Node(kinds.pop() if len(kinds) == 1 else "union")
        node.check = _union_check(members, tag, by_tag, untagged)
        node.members = members
        return node


def _flatten(members: list[Node]) -> list[Node]:
    flat: list[Node] = []
    for member in members:
        flat.extend(member.members or [member])
    return flat


def _literal_values(hint: Any) -> frozenset[object]:
    values: set[object] = set()
    hint = _bare(hint)
    union = te.get_origin(hint) in _UNIONS
    for arg in te.get_args(hint) if union else (hint,):
        if te.get_origin(arg) in _LITERALS:
            values.update(te.get_args(arg))
    return frozenset(values)


def _bare(hint: Any) -> Any:
    while te.get_origin(hint) in (te.Annotated, te.Required, te.NotRequired):
        hint = te.get_args(hint)[0]
    return hint


def _alias(hint: Any) -> str | None:
    while te.get_origin(hint) in (te.Required, te.NotRequired):
        hint = te.get_args(hint)[0]
    for extra in getattr(hint, "__metadata__", ()):
        alias = getattr(extra, "alias", None)
        if isinstance(alias, str):
            return alias
    return None


def _is_required(td: Any, name: str, hint: Any) -> bool:
    # `from __future__ import annotations` hides Required[] from __required_keys__
    # in subclasses on older Pythons; the resolved hint tells the truth.
    origin = te.get_origin(hint)
    if origin is te.Required:
        return True
    if origin is te.NotRequired:
        return False
    return name in getattr(td, "__required_keys__", ()) and bool(getattr(td, "__total__", True))


def _typeddict_check(fields: Mapping[str, Node], required: tuple[str, ...], extra: bool) -> Check:
    def check(value: object) -> Problem | None:
        if not isinstance(value, dict):
            return ((), "Input should be a valid dictionary")
        for name in required:
            if name not in value:
                return ((name,), "Field required")
        for name, item in value.items():
            node = fields.get(name)
            if node is None:
                if extra:
                    continue
                return ((name,), "Extra inputs are not permitted")
            problem = node.check(item)
            if problem is not None:
                return ((name, *problem[0]), problem[1])
        return None

    return check


def _union_check(
    members: list[Node], tag: str | None, by_tag: dict[object, list[Node]], untagged: list[Node]
) -> Check:
    loose = (
        frozenset().union(*(m.loose_tags.get(tag, frozenset()) for m in untagged))
        if tag
        else frozenset()
    )
    expected = ", ".join(sorted(repr(t) for t in {*by_tag, *loose}))
    # Only members that can take the value's JSON kind are tried (speed, and
    # the error then comes from a member of the right kind).
    by_kind = {
        name: [m for m in members if m.kind in kinds or m.kind not in _SIMPLE_KINDS] or members[:1]
        for name, kinds in _ACCEPTS.items()
    }

    routed = {found: [*found_members, *untagged] for found, found_members in by_tag.items()}
    routed.update({found: untagged for found in loose - set(by_tag)})
    if untagged:
        routed[None] = untagged

    def check(value: object) -> Problem | None:
        candidates = by_kind.get(type(value).__name__, members)
        if tag is not None and type(value) is dict and tag in value:
            found = value[tag]
            tagged = routed.get(found) if _hashable(found) else None
            if tagged is None:
                return (
                    (tag,),
                    f"Input tag {found!r} does not match any of the expected tags: {expected}",
                )
            candidates = tagged
        first: Problem | None = None
        for member in candidates:
            problem = member.check(value)
            if problem is None:
                return None
            if first is None:
                first = problem
        return first or ((), "Input does not match any allowed type")

    return check


def _hashable(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _literal(values: tuple[object, ...]) -> Node:
    allowed = frozenset(values)
    words = [repr(v) for v in values]
    said = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]

    wants_bool = any(isinstance(v, bool) for v in values)
    refusal: Problem = ((), f"Input should be {said}")

    def check(value: object) -> Problem | None:
        try:
            found = value in allowed
        except TypeError:  # unhashable
            return refusal
        # True == 1 and 0 == False: a bool is never an int here, nor the reverse.
        return None if found and isinstance(value, bool) == wants_bool else refusal

    return Node("literal", check)


def _list(item: Node) -> Node:
    def check(value: object) -> Problem | None:
        if not isinstance(value, list):
            return ((), "Input should be a valid list")
        for index, element in enumerate(value):
            problem = item.check(element)
            if problem is not None:
                return ((index, *problem[0]), problem[1])
        return None

    return Node("list", check)


def _mapping(item: Node) -> Node:
    def check(value: object) -> Problem | None:
        if not isinstance(value, dict):
            return ((), "Input should be a valid dictionary")
        if item.kind == "any":
            return None
        for name, element in value.items():
            problem = item.check(element)
            if problem is not None:
                return ((name, *problem[0]), problem[1])
        return None

    return Node("dict", check)


_SCALARS: dict[Any, tuple[str, Callable[[object], bool], str]] = {
    str: ("str", lambda v: isinstance(v, str), "a valid string"),
    int: ("int", lambda v: isinstance(v, int) and not isinstance(v, bool), "a valid integer"),
    float: (
        "float",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "a valid number",
    ),
    bool: ("bool", lambda v: isinstance(v, bool), "a valid boolean"),
    type(None): ("null", lambda v: v is None, "null"),
}


def _scalar(tp: Any) -> Node:
    known = _SCALARS.get(tp)
    if known is None:
        return Node("any")  # file handles, paths, bytes: never JSON on the wire
    kind, ok, words = known

    def check(value: object) -> Problem | None:
        return None if ok(value) else ((), f"Input should be {words}")

    return Node(kind, check)
