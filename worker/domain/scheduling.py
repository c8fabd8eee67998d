"""Which queued requests go next: priorities, fair shares and the in-flight limit.

Pure rules, no I/O. Assembly asks three questions of them:

- is a batch due? (`cut_due`: each priority has its own maximum wait)
- how many requests may the next batch take at all? (`room`: the in-flight limit)
- how many of those go to each share key? (`allocate`: weighted shares)

Within a share key, requests go highest priority first, then oldest first; the
SQL adapter orders them so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from batchline.domain.invalid import InvalidRequest

MIN_PRIORITY = -5
MAX_PRIORITY = 5
DEFAULT_PRIORITY = 0
# The width of the requests.share_key column (models/tables.py).
MAX_SHARE_KEY_LENGTH = 200


def check_priority(priority: object) -> int:
    """The priority a request is enqueued with; None means the default."""
    if priority is None:
        return DEFAULT_PRIORITY
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidRequest(
            f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY},"
            f" got {priority!r:.40}"
        )
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidRequest(
            f"priority must be from {MIN_PRIORITY} (lowest) to {MAX_PRIORITY} (highest),"
            f" got {priority}"
        )
    return priority


def share_key(tags: Mapping[str, object] | None, share_tag: str) -> str:
    """The value requests share capacity by ('' when shares are off or the tag is absent)."""
    if not share_tag or not tags or share_tag not in tags:
        return ""
    value = tags[share_tag]
    return (value if isinstance(value, str) else repr(value))[:MAX_SHARE_KEY_LENGTH]


def _pairs(text: str, what: str) -> list[tuple[str, float]]:
    """`a:1,b:2` as [(a, 1.0), (b, 2.0)]; ValueError naming `what` when malformed."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.rpartition(":")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not value >= 0 or value == float("inf"):
            raise ValueError(f"{what} must be name:number pairs separated by commas, got {part!r}")
        pairs.append((name.strip(), value))
    return pairs


def parse_priority_waits(text: str) -> dict[int, float]:
    """`5:10,1:30`: requests of priority 5 and above wait at most 10 s, 1 and above 30 s."""
    waits = {}
    for name, seconds in _pairs(text, "BATCHLINE_PRIORITY_MAX_WAIT"):
        try:
            waits[check_priority(int(name))] = seconds
        except (ValueError, InvalidRequest):
            raise ValueError(
                f"BATCHLINE_PRIORITY_MAX_WAIT names priority {name!r}: "
                f"priorities are integers from {MIN_PRIORITY} to {MAX_PRIORITY}"
            ) from None
    return waits


def parse_share_weights(text: str) -> dict[str, float]:
    """`acme:3,globex:1`: a share key's weight (1 for any key not named)."""
    weights = dict(_pairs(text, "BATCHLINE_SHARE_WEIGHTS"))
    if any(w <= 0 for w in weights.values()):
        raise ValueError("BATCHLINE_SHARE_WEIGHTS: every weight must be > 0")
    return weights


def max_wait_for(priority: int, waits: Mapping[int, float], default: float) -> float:
    """A request's maximum wait: the shortest set for its priority or any below it."""
    return min([default, *(s for p, s in waits.items() if p <= priority)])


@dataclass(frozen=True)
class Waiting:
    """The queued requests of one priority: how many, and how long the oldest waited."""

    priority: int
    count: int
    oldest_wait_seconds: float


def cut_due(waiting: list[Waiting], waits: Mapping[int, float], default: float) -> bool:
    """A batch is due when some priority's oldest request waited its maximum wait."""
    return any(
        w.count > 0 and w.oldest_wait_seconds >= max_wait_for(w.priority, waits, default)
        for w in waiting
    )


def room(limit: int, effective: int | None, in_flight: int) -> int:
    """How many more requests may go in flight: 0 means none; no limit is a very large room.

    `effective` is the limit as lowered after a 429 on create. While nothing is in
    flight a batch may still go (up to the configured limit), so a lowered limit
    never stops the service for good."""
    if limit <= 0:
        return 2**31
    if effective is not None and in_flight > 0:
        limit = min(limit, effective)
    return max(0, limit - in_flight)


def lowered_limit(limit: int, effective: int | None, in_flight: int) -> int:
    """The effective limit after a 429 on create: what was in flight when the API said no."""
    current = limit if effective is None else min(limit, effective)
    return max(0, min(current, in_flight))


def allocate(
    demand: Mapping[str, int],
    slots: int,
    weights: Mapping[str, float],
    in_flight: Mapping[str, int] | None = None,
    limit: int = 0,
) -> dict[str, int]:
    """How many of `slots` each share key takes, by weighted max-min fairness.

    `demand` is what each key has queued. With an in-flight `limit`, each key with
    work (queued or in flight) is also held to its weighted share of that limit,
    less what it already has in flight: capacity a flood cannot take is kept for
    the others, so a newcomer never waits for the flood's batches to end.
    """
    in_flight = in_flight or {}
    active = {k for k, n in demand.items() if n > 0} | {k for k, n in in_flight.items() if n > 0}
    caps = {k: n for k, n in demand.items() if n > 0}
    if limit > 0 and len(active) > 1:
        total = sum(weights.get(k, 1.0) for k in active)
        for key in caps:
            share = int(limit * weights.get(key, 1.0) / total)
            caps[key] = max(0, min(caps[key], share - in_flight.get(key, 0)))
    return _water_fill(caps, slots, weights)


def _water_fill(
    caps: Mapping[str, int], slots: int, weights: Mapping[str, float]
) -> dict[str, int]:
    """Split `slots` by weight; a key never gets more than its cap, and what it
    cannot use goes to the others, again by weight."""
    given = dict.fromkeys(caps, 0)
    open_keys = sorted(k for k, c in caps.items() if c > 0)
    left = slots
    while left > 0 and open_keys:
        total = sum(weights.get(k, 1.0) for k in open_keys)
        progress = 0
        for key in open_keys:
            portion = max(1, int(left * weights.get(key, 1.0) / total))
            take = min(portion, caps[key] - given[key], left - progress)
            given[key] += take
            progress += take
            if progress >= left:
                break
        left -= progress
        open_keys = [k for k in open_keys if given[k] < caps[k]]
        if progress == 0:
            break
    return {k: n for k, n in given.items() if n > 0}
