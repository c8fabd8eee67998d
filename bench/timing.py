"""Timing helpers: interleaved rounds, so drift on a busy machine hits both sides."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    baseline: Callable[[], object], measured: Callable[[], object], rounds: int
) -> tuple[float, float]:
    """Median seconds of each, running them alternately `rounds` times."""
    base, ours = [], []
    for _ in range(rounds):
        base.append(seconds(baseline))
        ours.append(seconds(measured))
    return statistics.median(base), statistics.median(ours)
