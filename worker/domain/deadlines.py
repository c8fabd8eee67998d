"""Deadlines: when a request must be final, and when it must leave the batch path.

A deadline is an absolute time (stored in UTC). `enqueue(deadline=...)` takes a
datetime, a timedelta or seconds from now; without one, a request takes the
default for the first of its tags named in BATCHLINE_DEADLINE_BY_TAG, else the
global BATCHLINE_DEADLINE_SECONDS (0: none). A request still not final at its
deadline minus the expected synchronous latency is due for the synchronous
fallback (batchline.services.fallback).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batchline.domain.invalid import InvalidRequest

# What `deadline=` takes: a datetime, a timedelta, seconds from now, or None.
Deadline = datetime | timedelta | float | int | None
# Far enough for any use, near enough that a typo in a unit does not pass.
MAX_DEADLINE_SECONDS = 366 * 24 * 3600.0


def deadline_epoch(deadline: object, now: float) -> float | None:
    """`deadline` (datetime, timedelta, seconds from now, or None) as seconds since 1970."""
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            raise InvalidRequest("deadline must be a timezone-aware datetime (e.g. in UTC)")
        return check_deadline_epoch(deadline.timestamp(), now)
    if isinstance(deadline, timedelta):
        deadline = deadline.total_seconds()
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise InvalidRequest("deadline must be a datetime, a timedelta or seconds from now")
    if not math.isfinite(deadline) or not 0 < deadline <= MAX_DEADLINE_SECONDS:
        raise InvalidRequest(f"deadline must be 0 to {MAX_DEADLINE_SECONDS:.0f} seconds away")
    return round(now + float(deadline), 3)


def check_deadline_epoch(value: object, now: float | None = None) -> float:
    """An absolute deadline in seconds since 1970, as the stream entry carries it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"deadline must be a time in seconds since 1970, got {value!r:.40}")
    if not 0 < value <= 32_503_680_000:  # before the year 3000
        raise InvalidRequest(f"deadline out of range: {value!r:.40}")
    if now is not None and value > now + MAX_DEADLINE_SECONDS:
        raise InvalidRequest("deadline is more than a year away")
    return round(float(value), 3)


@dataclass(frozen=True)
class DeadlineDefaults:
    """Deadlines for requests enqueued without one, in seconds after enqueue."""

    by_tag: Mapping[tuple[str, str | None], float] = field(default_factory=dict)
    everything: float = 0.0

    def seconds_for(self, tags: Mapping[str, Any] | None) -> float | None:
        for (name, value), seconds in self.by_tag.items():
            if tags and name in tags and (value is None or str(tags[name]) == value):
                return seconds
        return self.everything or None


def parse_by_tag(text: str) -> dict[tuple[str, str | None], float]:
    """`tier=interactive:60,urgent:300` -> {("tier", "interactive"): 60, ("urgent", None): 300}.

    `name=value:seconds` matches that tag value, `name:seconds` any value of it;
    the first entry that matches a request wins."""
    out: dict[tuple[str, str | None], float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match, _, seconds = item.rpartition(":")
        name, eq, value = match.partition("=")
        try:
            number = float(seconds)
        except ValueError:
            number = -1.0
        if not name.strip() or not math.isfinite(number) or not 0 < number <= MAX_DEADLINE_SECONDS:
            raise ValueError(f"{item!r}: expected name=value:seconds or name:seconds")
        out[(name.strip(), value.strip() if eq else None)] = number
    return out


def deadline_at(
    given: float | None,
    tags: Mapping[str, Any] | None,
    enqueued: datetime,
    defaults: DeadlineDefaults,
) -> datetime | None:
    """The request's deadline: the one it was given, else its default, else None."""
    if given is not None:
        return datetime.fromtimestamp(given, UTC)
    seconds = defaults.seconds_for(tags)
    return None if seconds is None else enqueued + timedelta(seconds=seconds)


def fallback_due_before(now: datetime, sync_latency_seconds: float) -> datetime:
    """Requests whose deadline is before this are due for the synchronous path now."""
    return now + timedelta(seconds=sync_latency_seconds)
