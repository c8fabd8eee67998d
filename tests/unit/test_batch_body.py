"""The create body: encoded in the domain, read back by the custom_id decoder,
within the size rule the planner cuts batches by."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from batchline.domain.batch_body import (
    EMPTY_BODY_BYTES,
    ENVELOPE_BYTES_PER_REQUEST,
    BodyRow,
    encode_body,
)
from batchline.domain.custom_ids import RequestRef, decode_custom_id
from batchline.domain.planning import Limits, take_while_fits
from batchline.domain.prefix import with_hour_breakpoints

BREAKPOINT = {"type": "text", "text": "shared", "cache_control": {"type": "ephemeral"}}

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
params = st.builds(
    lambda text, cached: {
        "model": "m",
        "max_tokens": 1,
        "system": [BREAKPOINT] if cached else text,
        "messages": [{"role": "user", "content": text}],
    },
    texts,
    st.booleans(),
)
rows = st.lists(
    st.tuples(
        st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
        st.integers(min_value=1, max_value=999_999),
        params,
        st.booleans(),
    ),
    max_size=12,
    unique_by=lambda r: r[0],
)
deployments = st.one_of(st.just(""), st.text(alphabet="abcdefz0189", min_size=1, max_size=16))


def _body_rows(drawn: list[tuple[str, int, dict[str, Any], bool]]) -> list[BodyRow]:
    return [BodyRow(rid, attempt, orjson.dumps(p).decode(), ttl) for rid, attempt, p, ttl in drawn]


def _sliced(items: list[BodyRow], size: int) -> list[list[BodyRow]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@given(rows, deployments, st.integers(min_value=1, max_value=5))
def test_batch_body__round_trips_through_the_decoder(
    drawn: list[tuple[str, int, dict[str, Any], bool]], deployment: str, slice_size: int
) -> None:
    body = b"".join(encode_body(_sliced(_body_rows(drawn), slice_size), deployment))
    entries = orjson.loads(body)["requests"]
    assert [decode_custom_id(e["custom_id"], deployment) for e in entries] == [
        RequestRef(rid, attempt) for rid, attempt, _, _ in drawn
    ]
    assert [e["params"] for e in entries] == [
        with_hour_breakpoints(p) if ttl else p for _, _, p, ttl in drawn
    ]


@given(rows, deployments, st.integers(min_value=1, max_value=5))
def test_batch_body__streamed_in_any_slices_is_the_same_bytes(
    drawn: list[tuple[str, int, dict[str, Any], bool]], deployment: str, slice_size: int
) -> None:
    items = _body_rows(drawn)
    whole = b"".join(encode_body([items], deployment))
    assert b"".join(encode_body(_sliced(items, slice_size), deployment)) == whole


@given(rows, deployments)
def test_batch_body__fits_the_size_rule(
    drawn: list[tuple[str, int, dict[str, Any], bool]], deployment: str
) -> None:
    """The bytes the planner counts for a batch (params as stored plus an envelope
    each) are never fewer than the body's. The 1-hour rewrite is left out: it is
    made only for a cache primer, which goes alone."""
    items = [row._replace(cache_ttl_1h=False) for row in _body_rows(drawn)]
    body = b"".join(encode_body([items], deployment))
    counted = EMPTY_BODY_BYTES + sum(
        len(row.params.encode()) + ENVELOPE_BYTES_PER_REQUEST for row in items
    )
    assert len(body) <= counted
    sizes = [(row.request_id, len(row.params.encode())) for row in items]
    if len(items) > 1:
        # A batch the planner lets through at exactly its counted size still fits.
        limits = Limits(max_requests=len(items), max_bytes=counted)
        assert len(list(take_while_fits(sizes, limits))) == len(items)


def test_batch_body__is_byte_for_byte_the_body_batchline_always_sent() -> None:
    rid = "0" * 31 + "1"
    items = [
        BodyRow(rid, 2, '{"model":"m","max_tokens":1}', False),
        BodyRow(
            "f" * 32,
            1,
            '{"model":"m","system":[{"type":"text","text":"s",'
            '"cache_control":{"type":"ephemeral"}}]}',
            True,
        ),
    ]
    assert b"".join(encode_body([items[:1], items[1:]], "dep1")) == (
        b'{"requests":[{"custom_id":"bldep1_' + rid.encode() + b'-2",'
        b'"params":{"model":"m","max_tokens":1}},'
        b'{"custom_id":"bldep1_' + b"f" * 32 + b'-1","params":{"model":"m","system":'
        b'[{"type":"text","text":"s","cache_control":{"type":"ephemeral","ttl":"1h"}}]}}]}'
    )
    assert b"".join(encode_body([])) == b'{"requests":[]}'
