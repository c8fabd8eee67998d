"""Pure deadline rules: what `deadline=` accepts, the defaults, and the
synchronous fallback's retry decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.domain.deadlines import (
    DeadlineDefaults,
    deadline_at,
    deadline_epoch,
    parse_by_tag,
)
from batchline.domain.retry import SYNC_BACKOFF_SECONDS, sync_retry_delay
from batchline.domain.validation import InvalidRequest, check_entry_meta

NOW = 1_800_000_000.0
ENQUEUED = datetime.fromtimestamp(NOW, UTC)


def test_deadline_epoch__takes_datetime_timedelta_and_seconds() -> None:
    assert deadline_epoch(None, NOW) is None
    assert deadline_epoch(30, NOW) == NOW + 30
    assert deadline_epoch(timedelta(minutes=1), NOW) == NOW + 60
    assert deadline_epoch(ENQUEUED + timedelta(hours=1), NOW) == NOW + 3600


@pytest.mark.parametrize(
    "bad", [0, -1, float("nan"), float("inf"), True, "30", datetime(2030, 1, 1), 10**9]
)
def test_deadline_epoch__refuses_what_is_not_a_deadline(bad: object) -> None:
    with pytest.raises(InvalidRequest, match="deadline"):
        deadline_epoch(bad, NOW)


def test_entry_meta__deadline_is_checked_like_enqueue_checks_it() -> None:
    assert check_entry_meta({"deadline": NOW})["deadline"] == NOW
    for bad in ("soon", -5, float("nan"), [1]):
        with pytest.raises(InvalidRequest, match="deadline"):
            check_entry_meta({"deadline": bad})


def test_defaults__given_wins_then_first_matching_tag_then_global() -> None:
    defaults = DeadlineDefaults(parse_by_tag("tier=interactive:60, urgent:300"), 3600)
    given = deadline_at(NOW + 5, {"tier": "interactive"}, ENQUEUED, defaults)
    assert given == ENQUEUED + timedelta(seconds=5)
    by_value = deadline_at(None, {"tier": "interactive"}, ENQUEUED, defaults)
    assert by_value == ENQUEUED + timedelta(seconds=60)
    by_name = deadline_at(None, {"urgent": True}, ENQUEUED, defaults)
    assert by_name == ENQUEUED + timedelta(seconds=300)
    other = deadline_at(None, {"tier": "backfill"}, ENQUEUED, defaults)
    assert other == ENQUEUED + timedelta(seconds=3600)
    assert deadline_at(None, None, ENQUEUED, DeadlineDefaults()) is None


@pytest.mark.parametrize("bad", ["tier=x", "tier=x:0", ":5", "a:b", "a:-1"])
def test_parse_by_tag__refuses_malformed_entries(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_by_tag(bad)


def test_sync_retry__429_waits_its_retry_after_and_5xx_backs_off() -> None:
    assert sync_retry_delay(429, 3.0, 1, 20.0) == 3.0
    assert sync_retry_delay(500, None, 2, 20.0) == SYNC_BACKOFF_SECONDS[1]
    assert sync_retry_delay(None, None, 1, 20.0) == SYNC_BACKOFF_SECONDS[0]  # no answer


def test_sync_retry__gives_up_on_refusals_past_the_deadline_and_after_the_last_try() -> None:
    assert sync_retry_delay(400, None, 1, 20.0) is None
    assert sync_retry_delay(401, None, 1, 20.0) is None
    assert sync_retry_delay(429, 30.0, 1, 20.0) is None  # could not start before the deadline
    assert sync_retry_delay(500, None, len(SYNC_BACKOFF_SECONDS) + 1, 20.0) is None


@given(
    status=st.sampled_from([None, 429, 500, 502, 503, 529, 400, 404]),
    retry_after=st.none() | st.floats(0, 100),
    tries=st.integers(1, 10),
    left=st.floats(-10, 100),
)
def test_sync_retry__never_waits_past_the_deadline(
    status: int | None, retry_after: float | None, tries: int, left: float
) -> None:
    delay = sync_retry_delay(status, retry_after, tries, left)
    assert delay is None or 0 <= delay < left
