"""Running a measured step in a process of its own, and reading its peak memory.

Each step runs in a fresh spawned process, so one case's allocations never
inflate the next case's peak. Peak memory is the kernel's high-water mark of
resident memory (VmHWM), reset just before the measured part starts.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


@dataclass
class PeakMemory:
    """Resident memory at the start of the measured part, and its peak, in bytes."""

    start: int = 0
    peak: int = 0


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """Measure peak resident memory of this process over the `with` body."""
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")
    reading = PeakMemory(start=_status_kib("VmRSS") * 1024)
    yield reading
    reading.peak = _status_kib("VmHWM") * 1024


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a fresh spawned process and return what it returns."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
