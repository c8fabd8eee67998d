"""Priorities, fair shares and capacity as pure rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.domain.scheduling import (
    Waiting,
    allocate,
    check_priority,
    cut_due,
    lowered_limit,
    max_wait_for,
    parse_priority_waits,
    parse_share_weights,
    room,
    share_key,
)
from batchline.domain.validation import InvalidRequest


def test_check_priority__range_and_type_are_refused_with_the_range() -> None:
    assert check_priority(None) == 0
    assert check_priority(5) == 5 and check_priority(-5) == -5
    for bad in (6, -6, 1.0, "1", True):
        with pytest.raises(InvalidRequest, match="priority must be"):
            check_priority(bad)


def test_share_key__is_the_tag_value_or_empty() -> None:
    assert share_key({"tenant": "acme"}, "tenant") == "acme"
    assert share_key({"tenant": 7}, "tenant") == "7"
    assert share_key({"other": "x"}, "tenant") == ""
    assert share_key({"tenant": "acme"}, "") == ""


def test_priority_waits__higher_priorities_take_the_shortest_wait_at_or_below_them() -> None:
    waits = parse_priority_waits("5:10, 1:30")
    assert max_wait_for(5, waits, 60) == 10
    assert max_wait_for(3, waits, 60) == 30
    assert max_wait_for(0, waits, 60) == 60
    assert cut_due([Waiting(5, 1, 11)], waits, 60)
    assert not cut_due([Waiting(0, 100, 59), Waiting(3, 1, 29)], waits, 60)


@pytest.mark.parametrize("text", ["9:10", "x:1", "5", "5:-1", "5:nan"])
def test_priority_waits__malformed_settings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="BATCHLINE_PRIORITY_MAX_WAIT"):
        parse_priority_waits(text)


def test_share_weights__parse_and_refuse_zero() -> None:
    assert parse_share_weights("acme:3,globex:1") == {"acme": 3.0, "globex": 1.0}
    with pytest.raises(ValueError, match="> 0"):
        parse_share_weights("acme:0")


def test_room__limit_lowered_only_while_something_is_in_flight() -> None:
    assert room(100, None, 30) == 70
    assert room(100, 40, 30) == 10
    # Nothing in flight: a lowered limit never blocks the service for good.
    assert room(100, 0, 0) == 100
    assert room(0, None, 10**6) > 10**6


def test_lowered_limit__is_what_was_in_flight_and_never_rises() -> None:
    assert lowered_limit(100, None, 30) == 30
    assert lowered_limit(100, 20, 30) == 20


def test_allocate__weighted_share_of_a_batch_and_spare_slots_go_to_the_others() -> None:
    assert allocate({"a": 1000, "b": 1000}, 100, {"a": 3.0}) == {"a": 75, "b": 25}
    assert allocate({"a": 1000, "b": 5}, 100, {}) == {"a": 95, "b": 5}


def test_allocate__a_flood_is_held_to_its_share_of_the_in_flight_limit() -> None:
    # a holds its half of the limit already: b's new work takes the room, a none.
    portions = allocate({"a": 100_000, "b": 10}, 100_000, {}, {"a": 10_000, "b": 5}, 20_000)
    assert portions == {"b": 10}
    # Alone, a takes the whole limit.
    assert allocate({"a": 100_000}, 100_000, {}, {}, 20_000) == {"a": 100_000}


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 500), max_size=6),
    st.integers(0, 1_000),
    st.dictionaries(st.sampled_from("abcdef"), st.floats(0.1, 10), max_size=6),
)
def test_allocate__never_over_slots_or_demand_and_fills_what_it_can(
    demand: dict[str, int], slots: int, weights: dict[str, float]
) -> None:
    portions = allocate(demand, slots, weights)
    assert sum(portions.values()) == min(slots, sum(demand.values()))
    assert all(0 < n <= demand[k] for k, n in portions.items())
