"""Pure domain code: validation, custom_ids, planning, JSONL lines."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.domain.custom_ids import (
    CUSTOM_ID_PATTERN,
    decode_custom_id,
    encode_custom_id,
    new_request_id,
)
from batchline.domain.jsonl import iter_lines
from batchline.domain.planning import Limits, should_cut, take_while_fits
from batchline.domain.results import UnreadableLine, parse_line
from batchline.domain.validation import (
    InvalidRequest,
    allowed_params,
    check_betas,
    check_entry_meta,
    encode_params,
    known_params,
)
from batchline.settings import Settings

GOOD = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_validation__known_params_are_the_installed_sdks_own() -> None:
    from anthropic.types.beta.message_create_params import (
        MessageCreateParamsNonStreaming as BetaParams,
    )
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

    def keys(spec: type) -> set[str]:
        return set(spec.__required_keys__ | spec.__optional_keys__)  # type: ignore[attr-defined]

    assert known_params() == keys(MessageCreateParamsNonStreaming)
    assert known_params(beta=True) == keys(BetaParams) - {"betas"}


def test_validation__a_parameter_a_newer_sdk_adds_is_accepted_without_a_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from anthropic.types import message_create_params

    class Newer(message_create_params.MessageCreateParamsNonStreaming, total=False):
        reasoning_budget: int

    with pytest.raises(InvalidRequest, match="reasoning_budget"):
        encode_params({**GOOD, "reasoning_budget": 5})
    monkeypatch.setattr(message_create_params, "MessageCreateParamsNonStreaming", Newer)
    known_params.cache_clear()
    allowed_params.cache_clear()
    try:
        assert orjson.loads(encode_params({**GOOD, "reasoning_budget": 5}))["reasoning_budget"] == 5
    finally:
        monkeypatch.undo()
        known_params.cache_clear()
        allowed_params.cache_clear()


def test_validation__beta_parameters_need_betas() -> None:
    beta_only = sorted(known_params(beta=True) - known_params())
    assert beta_only, "the installed SDK has beta-only parameters"
    body = {**GOOD, beta_only[0]: None}
    with pytest.raises(InvalidRequest, match="betas"):
        encode_params(body)
    assert beta_only[0] in orjson.loads(encode_params(body, betas=["some-beta-2025-01-01"]))


def test_validation__beta_parameter_without_betas_is_refused_with_the_hint() -> None:
    beta_only = sorted(known_params(beta=True) - known_params())
    assert beta_only, "the installed SDK has beta-only parameters"
    body = {**GOOD, beta_only[0]: None}
    with pytest.raises(InvalidRequest, match=r"beta parameters need betas=\[\.\.\.\]"):
        encode_params(body, betas=[])
    # A parameter no type knows gets no beta hint: betas would not help it.
    with pytest.raises(InvalidRequest, match="installed anthropic SDK") as refused:
        encode_params({**GOOD, "temprature": 1}, betas=["x-2025-01-01"])
    assert "betas=" not in str(refused.value)


def test_validation__betas_are_normalised_and_checked() -> None:
    assert check_betas(None) == [] and check_betas([]) == []
    assert check_betas(["b-2", "a-1", "b-2"]) == ["a-1", "b-2"]
    assert check_betas(("a-1",)) == ["a-1"]
    for bad in ("a-1", ["a,b"], ["a b"], [""], [1], ["x" * 101], ["a"] * 21, {"a": 1}):
        with pytest.raises(InvalidRequest, match="betas"):
            check_betas(bad)


def test_validation__entry_meta_takes_a_list_of_short_beta_names() -> None:
    assert check_entry_meta({"betas": ["a-2025-01-01"]})["betas"] == ["a-2025-01-01"]
    for bad in ("a-2025-01-01", ["a,b"], [None]):
        with pytest.raises(InvalidRequest, match="betas"):
            check_entry_meta({"betas": bad})


def test_validation__good_params_encode_to_their_json() -> None:
    assert orjson.loads(encode_params(GOOD)) == GOOD
    assert orjson.loads(encode_params({**GOOD, "temperature": 0.2})) == {**GOOD, "temperature": 0.2}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ([], "mapping"),
        ({**GOOD, "model": ""}, "model"),
        ({k: v for k, v in GOOD.items() if k != "max_tokens"}, "max_tokens"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_tokens": True}, "max_tokens"),
        ({**GOOD, "messages": []}, "messages"),
        ({**GOOD, "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({**GOOD, "stream": True}, "stream"),
        ({**GOOD, "temprature": 1}, "temprature"),
        ({**GOOD, "metadata": {"x": math.nan}}, "non-finite"),
        ({**GOOD, "metadata": {"x": object()}}, "JSON"),
        ({**GOOD, "system": 3}, "system"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
    ],
)
def test_validation__bad_params_name_the_problem(params: Any, named: str) -> None:
    with pytest.raises(InvalidRequest, match=named):
        encode_params(params)


def test_validation__too_large_for_a_batch() -> None:
    with pytest.raises(InvalidRequest, match="at most 100"):
        encode_params({**GOOD, "system": "x" * 200}, max_bytes=100)


@given(st.integers(min_value=1, max_value=999_999))
def test_custom_ids__round_trip_and_fit_the_api_pattern(attempt: int) -> None:
    request_id = new_request_id()
    custom_id = encode_custom_id(request_id, attempt)
    assert CUSTOM_ID_PATTERN.match(custom_id)
    ref = decode_custom_id(custom_id)
    assert ref is not None and (ref.request_id, ref.attempt) == (request_id, attempt)


@pytest.mark.parametrize("foreign", ["question-0", "bl123-1", "", "bl" + "0" * 32])
def test_custom_ids__foreign_ids_decode_to_none(foreign: str) -> None:
    assert decode_custom_id(foreign) is None


@given(
    st.lists(st.integers(min_value=1, max_value=5_000), max_size=200),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=200, max_value=50_000),
)
def test_planning__batches_respect_both_limits(sizes: list[int], max_n: int, max_b: int) -> None:
    limits = Limits(max_requests=max_n, max_bytes=max_b)
    items = [(str(i), s) for i, s in enumerate(sizes)]
    taken = list(take_while_fits(items, limits))
    assert taken == [i for i, _ in items[: len(taken)]]  # in order, no gaps
    assert len(taken) <= max_n
    if items:
        assert taken  # something always goes, even one oversized request
    if len(taken) > 1:
        total = sum(s + 64 for _, s in items[: len(taken)]) + len(b'{"requests":[]}')
        assert total <= max_b


def test_planning__cut_when_full_or_old_enough() -> None:
    limits = Limits(max_requests=10, max_bytes=10_000)
    assert not should_cut(0, 0, 999, limits, 60)
    assert not should_cut(3, 300, 10, limits, 60)
    assert should_cut(3, 300, 60, limits, 60)
    assert should_cut(10, 300, 0, limits, 60)
    assert should_cut(2, 9_900, 0, limits, 60)


@given(
    st.lists(
        st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
        max_size=30,
    ),
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1),
)
def test_jsonl__lines_survive_any_chunking(lines: list[bytes], crlf: bool, cuts: list[int]) -> None:
    ending = b"\r\n" if crlf else b"\n"
    data = b"".join(line + ending for line in lines)
    chunks, pos, i = [], 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        chunks.append(data[pos : pos + step])
        pos, i = pos + step, i + 1
    assert list(iter_lines(chunks)) == lines


def test_results__hostile_lines() -> None:
    with pytest.raises(UnreadableLine):
        parse_line(b"{not json")
    with pytest.raises(UnreadableLine):
        parse_line(b'{"result": {"type": "succeeded"}}')
    assert parse_line(b'{"custom_id": "a", "result": {"type": "weird"}}').result_type == "malformed"
    missing = b'{"custom_id": "a", "result": {"type": "succeeded", "message": {"id": "m"}}}'
    assert parse_line(missing).result_type == "malformed"
    errored = (
        b'{"custom_id": "a", "result": {"type": "errored", "error": {"type": "error",'
        b' "error": {"type": "overloaded_error", "message": "busy"}}}}'
    )
    parsed = parse_line(errored)
    assert (parsed.result_type, parsed.error_type) == ("errored", "overloaded_error")


def test_child_env__carries_every_setting_to_the_worker() -> None:
    from batchline.local import child_env

    settings = Settings(
        max_batch_bytes=123_456,
        stream_key_prefix="elsewhere",
        ingest_chunk=17,
        max_wait_seconds=2.5,
        api_key="k",
        base_url="http://127.0.0.1:1",
    )
    assert Settings.from_env(child_env(settings)) == settings
