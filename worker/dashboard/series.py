"""What the overview's charts plot: series from the snapshots, the running
totals and a sample of the latest results, each as (label, value) points.

Nothing here counts the whole database: snapshots are a row a minute, totals a
few rows per batch and day, and the sample is the latest SAMPLE results found
by primary key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy.orm import Session

from batchline.adapters import queries, summaries
from batchline.models import Snapshot

SAMPLE = 2_000
HOURS = timedelta(hours=6)
BATCHES = 20
GROUPS = 12

Points = list[tuple[str, float]]


@dataclass(frozen=True)
class Series:
    queue_depth: Points
    throughput: Points
    hit_by_batch: Points
    hit_by_prefix: Points
    hit_by_tag: Points
    tag: str | None
    finish_seconds: list[float]


def queue_depth(snaps: list[Snapshot]) -> Points:
    """Requests waiting at each snapshot: in the Redis intake and queued in SQL."""
    return [(f"{s.taken_at:%H:%M}", float((s.intake_depth or 0) + s.queued)) for s in snaps]


def throughput(snaps: list[Snapshot]) -> Points:
    """Requests reaching a final state per minute, between consecutive snapshots."""
    points = []
    for before, after in pairwise(snaps):
        minutes = (after.taken_at - before.taken_at).total_seconds() / 60
        if minutes > 0:
            points.append((f"{after.taken_at:%H:%M}", max(0, after.final - before.final) / minutes))
    return points


def _rate(stats: Iterable[queries.CacheStats]) -> float:
    read = written = fresh = 0
    for s in stats:
        read, written, fresh = (
            read + s.cache_read_tokens,
            written + s.cache_write_tokens,
            fresh + s.input_tokens,
        )
    return queries.CacheStats(written, read, fresh).hit_rate


def hit_by_batch(session: Session, batch_ids: list[int]) -> Points:
    """Cache hit rate (%) of each batch's results, oldest batch first."""
    found = summaries.totals_by_batch(session, batch_ids)
    return [(f"#{b}", round(100 * found[b].hit_rate, 1)) for b in sorted(found)]


def hit_by_group(sample: list[queries.Settled], key: str | None) -> Points:
    """Cache hit rate (%) per prefix group (key None) or per value of tag `key`."""
    groups: dict[str, list[queries.CacheStats]] = defaultdict(list)
    for s in sample:
        if key is None:
            name = s.prefix_hash[:8] if s.prefix_hash else "no prefix"
        else:
            name = str((s.tags or {}).get(key, "-"))
        groups[name].append(s.stats)
    biggest = sorted(groups, key=lambda g: -len(groups[g]))[:GROUPS]
    return [(name, round(100 * _rate(groups[name]), 1)) for name in sorted(biggest)]


def common_tag(sample: list[queries.Settled]) -> str | None:
    """The tag name most of the sample carries: the per-tag chart's default."""
    seen: dict[str, int] = defaultdict(int)
    for s in sample:
        for name in s.tags or {}:
            seen[name] += 1
    return max(sorted(seen), key=lambda n: seen[n]) if seen else None


def series(session: Session, now: datetime, tag: str | None, batch_ids: list[int]) -> Series:
    snaps = summaries.snapshots_since(session, now - HOURS)
    sample = queries.latest_settled(session, SAMPLE)
    tag = tag or common_tag(sample)
    return Series(
        queue_depth(snaps),
        throughput(snaps),
        hit_by_batch(session, batch_ids),
        hit_by_group(sample, None),
        hit_by_group(sample, tag) if tag else [],
        tag,
        [
            max(0.0, (s.finished_at - s.enqueued_at).total_seconds())
            for s in sample
            if s.finished_at is not None
        ],
    )
