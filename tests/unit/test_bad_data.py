"""Pure rules for bad data: bounded line splitting, storable fields, strict entries, bisection."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.adapters.intake_entries import StreamEntry, decode_entries, split_bundle
from batchline.domain.jsonl import HEAD_BYTES, Overlong, iter_lines
from batchline.domain.results import (
    UnreadableLine,
    parse_line,
    parse_overlong,
    renamed_line,
    result_object,
)
from batchline.domain.validation import InvalidRequest, check_tags, encode_params
from batchline.services.isolate import store_isolating
from harness.poison import PARAMS, POISON_ENTRIES


def lines_of(chunks: Sequence[bytes], limit: int) -> list[bytes | Overlong]:
    return list(iter_lines(chunks, limit))


@given(
    st.lists(st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b), max_size=8),
    st.data(),
)
def test_iter_lines__any_chunking_gives_the_same_lines(
    lines: list[bytes], data: st.DataObject
) -> None:
    body = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    expected = [line.removesuffix(b"\r") for line in lines if line.removesuffix(b"\r")]
    assert lines_of(chunks, 1 << 20) == expected


def test_iter_lines__a_line_over_the_limit_is_named_at_once_and_skipped_to_its_newline() -> None:
    head = b'{"custom_id":"bl' + b"a" * 32 + b'-1","result":'
    chunks = [head, b"x" * 100, b"y" * 100, b"z" * 100 + b"\nnext\n"]

    out = lines_of(chunks, 150)

    assert isinstance(out[0], Overlong) and out[0].head.startswith(head)
    assert out[1:] == [b"next"]


def test_iter_lines__an_endless_line_holds_only_its_head() -> None:
    def endless() -> object:
        yield b'{"custom_id":"x",'
        for _ in range(2_000):
            yield b"a" * 65_536  # 128 MiB in all, never a newline

    out = iter_lines(endless(), 1 << 20)  # type: ignore[arg-type]
    first = next(out)

    assert isinstance(first, Overlong) and len(first.head) == HEAD_BYTES
    assert list(out) == []


def test_parse_line__u0000_in_a_reply_keeps_the_exact_bytes() -> None:
    line = (
        b'{"custom_id":"bl' + b"a" * 32 + b'-1","result":{"type":"succeeded","message":'
        b'{"id":"m","model":"claude-test","content":[{"type":"text","text":"a\\u0000b"}],'
        b'"usage":{"input_tokens":1,"output_tokens":2}}}}'
    )

    parsed = parse_line(line)

    assert parsed.line is line and parsed.result_type == "succeeded"
    assert result_object(parsed.line, "succeeded")["message"]["content"][0]["text"] == "a\x00b"


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({"type": ["succeeded"]}, "unknown result type"),
        (
            {
                "type": "errored",
                "error": {"error": {"type": "x\u0000" * 100, "message": "m\u0000"}},
            },
            None,
        ),
        (
            {
                "type": "succeeded",
                "message": {
                    "id": "m",
                    "model": "c",
                    "content": [],
                    "usage": {"input_tokens": 1 << 40, "output_tokens": 1},
                },
            },
            "usage is not a set of token counts",
        ),
        (
            {
                "type": "succeeded",
                "message": {
                    "id": "m",
                    "model": "m\u0000",
                    "content": [],
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            },
            "not a model name",
        ),
    ],
    ids=["type-a-list", "nul-in-error", "tokens-overflow", "nul-in-model"],
)
def test_parse_line__fields_beside_the_line_are_always_storable(
    result: dict[str, object], why: str | None
) -> None:
    parsed = parse_line(orjson.dumps({"custom_id": "bl" + "a" * 32 + "-1", "result": result}))

    for text in (parsed.error_type, parsed.error_message, parsed.model):
        assert text is None or "\x00" not in text
    assert parsed.error_type is None or len(parsed.error_type) <= 64
    if why is not None:
        assert why in (parsed.error_message or "")


def test_parse_overlong__names_the_request_at_the_start_of_the_line() -> None:
    parsed = parse_overlong(b'{"custom_id": "bl' + b"b" * 32 + b'-2", "result": {"ty', 100)

    assert parsed.custom_id == "bl" + "b" * 32 + "-2"
    assert parsed.result_type == "malformed" and parsed.line is None
    assert "BATCHLINE_MAX_RESULT_LINE_BYTES" in (parsed.error_message or "")
    with pytest.raises(UnreadableLine):
        parse_overlong(b'{"result": {}, "custom_id": "x"}', 100)


def test_renamed_line__changes_only_the_custom_id() -> None:
    line = b'{"custom_id":"bl1-1","result":{"type":"succeeded","x":"\\u0000 \\u00e9"}}'

    assert renamed_line(line, "bl1-1", "mine") == line.replace(b"bl1-1", b"mine")
    odd = b'{"result":{"type":"expired"},"custom_id":"bl1-1"}'
    assert orjson.loads(renamed_line(odd, "bl1-1", "mine")) == {
        "custom_id": "mine",
        "result": {"type": "expired"},
    }


def test_encode_params__deep_nesting_is_refused_by_name_not_recursion() -> None:
    deep: object = "x"
    for _ in range(10_000):
        deep = {"a": [deep]}

    with pytest.raises(InvalidRequest, match="nested deeper than"):
        encode_params({**PARAMS, "metadata": deep})


@pytest.mark.parametrize(
    "tags", [{"t": "a\u0000"}, {"a\u0000": 1}, {"big": 1 << 70}], ids=["value", "name", "int"]
)
def test_check_tags__what_jsonb_cannot_hold_is_refused(tags: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        check_tags(tags)


def test_encode_params__nul_in_the_model_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="U\\+0000"):
        encode_params({**PARAMS, "model": "claude\u0000"})


@pytest.mark.parametrize("kind", sorted(POISON_ENTRIES))
def test_decode_entries__every_poison_kind_is_refused_with_a_reason(kind: str) -> None:
    entry = StreamEntry(b"1-0", POISON_ENTRIES[kind]())

    with pytest.raises(ValueError, match=r"unreadable intake entry b'1-0': \S"):
        decode_entries(entry)


def test_split_bundle__the_good_requests_of_a_bad_bundle_read_alone() -> None:
    parts = split_bundle(StreamEntry(b"1-0", POISON_ENTRIES["bundle-one-bad"]()))

    readable = []
    for part in parts:
        with contextlib.suppress(ValueError):
            readable += decode_entries(part)
    assert len(parts) == 3 and len(readable) == 2


class Refusing(Exception):
    pass


def test_store_isolating__only_the_refused_item_is_left_out() -> None:
    from sqlalchemy.exc import DataError

    stored: list[int] = []
    refused: list[int] = []
    tries = 0

    def store(part: Sequence[int]) -> None:
        nonlocal tries
        tries += 1
        if 13 in part:
            raise DataError("INSERT", {}, Exception("refused"))
        stored.extend(part)

    store_isolating(list(range(100)), store, lambda item, _: refused.append(item))

    assert refused == [13]
    assert stored == [i for i in range(100) if i != 13]
    assert tries <= 2 * 7 + 1  # about two tries a level of halving


def test_store_isolating__other_errors_pass() -> None:
    def store(part: Sequence[int]) -> None:
        raise Refusing()

    with pytest.raises(Refusing):
        store_isolating([1, 2], store, lambda *_: None)
