"""The run-time reading of the SDK's TypedDicts that request validation rests on (no server)."""

from __future__ import annotations

from typing import Literal, Required

import pytest
from anthropic.types import message_create_params
from typing_extensions import TypedDict

from batchline.emulator.sdk_types import checker, format_problem

PARAMS = message_create_params.MessageCreateParamsNonStreaming
GOOD = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def _problem(value: object, tp: object = PARAMS) -> str | None:
    problem = checker(tp).check(value)
    return None if problem is None else format_problem(problem)


class _NewerParams(PARAMS, total=False):
    """What a newer SDK adding a param looks like: no emulator edit needed."""

    verbosity: Required[Literal["low", "high"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (GOOD, None),
        ({**GOOD, "max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({**GOOD, "stream": 0}, "stream: Input should be False"),
        ({k: v for k, v in GOOD.items() if k != "model"}, "model: Field required"),
        ({**GOOD, "tools": [{"type": "browser_toolset_20260801"}]}, None),
        # InputSchema allows extra keys (the SDK sets pydantic extra=allow on it).
        (
            {**GOOD, "tools": [{"name": "t", "input_schema": {"type": "object", "x-extra": 1}}]},
            None,
        ),
        ({**GOOD, "metadata": {"user_id": 3}}, "metadata.user_id: Input should be a valid string"),
        (
            {**GOOD, "messages": [{"role": "user", "content": [{"type": "nope"}]}]},
            "messages.0.content.0.type: Input tag 'nope' does not match any of the expected tags",
        ),
    ],
)
def test_sdk_types__params_checked_as_the_types_say(value: object, expected: str | None) -> None:
    problem = _problem(value)

    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected), problem


def test_sdk_types__a_param_a_newer_sdk_adds_is_read_from_its_types() -> None:
    assert _problem({**GOOD, "verbosity": "low"}, _NewerParams) is None
    assert _problem(GOOD, _NewerParams) == "verbosity: Field required"
    assert _problem({**GOOD, "verbosity": "loud"}, _NewerParams) == (
        "verbosity: Input should be 'low' or 'high'"
    )
    assert _problem({**GOOD, "verbosity": "low"}) == "verbosity: Extra inputs are not permitted"


class _Tree(TypedDict, total=False):
    name: Required[str]
    children: list[_Tree]


def test_sdk_types__recursive_types_compile_once_and_check_deeply() -> None:
    deep = {"name": "a", "children": [{"name": "b", "children": [{"children": []}]}]}

    assert _problem(deep, _Tree) == "children.0.children.0.name: Field required"
