"""Pure parts of create safety: named custom_ids, the API's Date, the reconciler's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.adapters.batch_api import RemoteBatch
from batchline.adapters.sql.reconcile import UnknownIntent
from batchline.domain.custom_ids import (
    CUSTOM_ID_PATTERN,
    check_deployment,
    decode_custom_id,
    encode_custom_id,
    is_batchline_shaped,
    new_deployment_name,
)
from batchline.domain.timing import api_offset, parse_http_date
from batchline.services.reconcile import Window, _past_finding
from batchline.settings import Settings, SettingsError

REQUEST = "0123456789abcdef0123456789abcdef"
deployments = st.from_regex(r"\A[a-z0-9]{1,16}\Z")


@given(deployments, st.integers(1, 999_999))
def test_custom_ids__named_round_trip_within_the_api_pattern(deployment: str, attempt: int) -> None:
    custom_id = encode_custom_id(REQUEST, attempt, deployment)
    assert CUSTOM_ID_PATTERN.match(custom_id) and is_batchline_shaped(custom_id)
    assert decode_custom_id(custom_id, deployment) == (REQUEST, attempt)


@given(deployments, deployments)
def test_custom_ids__another_deployments_id_is_not_ours(ours: str, theirs: str) -> None:
    custom_id = encode_custom_id(REQUEST, 1, theirs)
    assert (decode_custom_id(custom_id, ours) is None) == (ours != theirs)


def test_custom_ids__in_a_batch_we_planned_any_name_we_went_by_is_ours() -> None:
    renamed = encode_custom_id(REQUEST, 3, "before")
    assert decode_custom_id(renamed, None) == (REQUEST, 3)
    assert decode_custom_id(renamed, "after") is None
    assert decode_custom_id("question-1", None) is None


def test_custom_ids__unnamed_ids_are_ours_only_in_a_batch_we_planned() -> None:
    legacy = encode_custom_id(REQUEST, 2)
    assert decode_custom_id(legacy, "prod", legacy=True) == (REQUEST, 2)
    assert decode_custom_id(legacy, "prod", legacy=False) is None
    assert is_batchline_shaped(legacy) and not is_batchline_shaped("question-1")


@pytest.mark.parametrize("bad", ["", "Prod", "with-dash", "a" * 17, "under_score"])
def test_custom_ids__deployment_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        check_deployment(bad)
    if bad:
        with pytest.raises(SettingsError, match="BATCHLINE_DEPLOYMENT"):
            Settings(deployment=bad).validate()


def test_custom_ids__a_made_up_deployment_name_is_valid_and_fresh() -> None:
    names = {new_deployment_name() for _ in range(50)}
    assert len(names) == 50 and all(check_deployment(n) for n in names)


@pytest.mark.parametrize(
    "header",
    [
        "Sun, 29 Nov 2026 16:00:00 GMT",
        "Sun, 29 Nov 2026 16:00:00 -0000",
        "Sun, 29 Nov 2026 16:00:00 +0000",
        "Sun, 29 Nov 2026 17:00:00 +0100",
    ],
)
def test_http_date__every_zone_form_reads_as_aware_utc(header: str) -> None:
    assert parse_http_date(header) == datetime(2026, 11, 29, 16, tzinfo=UTC)


@pytest.mark.parametrize("header", [None, "", "yesterday", "Sun, 99 Foo 2026 25:00:00 GMT"])
def test_http_date__absent_or_unreadable_is_none(header: str | None) -> None:
    assert parse_http_date(header) is None


def test_http_date__offset_says_how_far_the_api_is_ahead() -> None:
    local = datetime(2026, 1, 1, 12, 10, tzinfo=UTC)
    assert api_offset(local, local - timedelta(minutes=10)) == timedelta(minutes=-10)
    assert api_offset(local, None) == timedelta()


T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _window(now: datetime, offset_minutes: float = 0) -> Window:
    return Window(
        now, timedelta(minutes=offset_minutes), timedelta(seconds=5), timedelta(seconds=30)
    )


def _remote(created: datetime) -> RemoteBatch:
    return RemoteBatch("msgbatch_x", "in_progress", 3, 0, 0, 0, 0, created, created)


def test_window__ripe_in_the_apis_clock_not_this_machines() -> None:
    # This machine runs 10 minutes ahead: the API made the batch 40 s ago by its own clock.
    window = _window(T0 + timedelta(minutes=10), offset_minutes=-10)
    assert window.ripe(_remote(T0 - timedelta(seconds=40)))
    assert not window.ripe(_remote(T0 - timedelta(seconds=20)))


def test_window__an_intent_waits_for_every_unread_batch_that_might_be_its_own() -> None:
    intent = UnknownIntent(1, 3, T0, held=3)
    later = _window(T0 + timedelta(minutes=10, seconds=5), offset_minutes=-10)
    # Made (by the API's clock) after the intent started (by ours): it may be its batch.
    assert not _past_finding(
        intent, [(3, T0 - timedelta(minutes=10) + timedelta(seconds=1))], later
    )
    # Another size, or made before the intent started: it cannot be.
    assert _past_finding(intent, [(4, T0 - timedelta(minutes=10))], later)
    assert _past_finding(intent, [(3, T0 - timedelta(minutes=11))], later)
    # Too soon after its create: a batch it made may not be listed yet.
    assert not _past_finding(intent, [], _window(T0 + timedelta(seconds=30)))
