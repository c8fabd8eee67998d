"""When a submitted batch is polled next: soon after creation, then backing off."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchline.domain.polling import next_poll_delay

ages = st.floats(min_value=0, max_value=1e7, allow_nan=False)
intervals = st.floats(min_value=0.01, max_value=3600, allow_nan=False)


@given(ages, ages, intervals)
def test_next_poll_delay__grows_with_age_and_never_passes_the_interval(
    a: float, b: float, interval: float
) -> None:
    young, old = sorted((a, b))
    assert next_poll_delay(young, interval) <= next_poll_delay(old, interval) <= interval
    assert next_poll_delay(young, interval) > 0


def test_next_poll_delay__a_new_batch_is_looked_at_within_a_second() -> None:
    assert next_poll_delay(0, 30) == 1.0
    assert next_poll_delay(10, 30) == 5.0
    assert next_poll_delay(3600, 30) == 30
    assert next_poll_delay(0, 0.2) == 0.2
