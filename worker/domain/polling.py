"""When to look at a submitted batch again.

A batch can end seconds after it is created (a small one, or the emulator),
or take hours. Polling at the full interval from the start makes every batch
wait up to one interval for nothing; polling fast throughout wastes calls on
the long ones. So the first look comes soon after creation and the gaps grow
with the batch's age, up to the configured interval.
"""

from __future__ import annotations

# The first look at a new batch comes this soon (or at the interval, if shorter).
FIRST_POLL_SECONDS = 1.0


def next_poll_delay(age_seconds: float, interval: float) -> float:
    """Seconds until the next poll of a batch submitted `age_seconds` ago: half
    its age, at least the first gap, at most `interval`."""
    first = min(FIRST_POLL_SECONDS, interval)
    return min(interval, max(first, age_seconds / 2))
