"""Emulated time: the wall clock, shifted by an offset and run at a chosen speed.

Every timestamp the emulator hands out or compares comes from one
`EmulatedClock`, so a test can jump a day ahead (a batch's 24 h expiry, the
29-day archive) or freeze time (speed 0) without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class ClockState:
    now: float
    speed: float
    offset_seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "now": rfc3339(self.now),
            "now_epoch": self.now,
            "speed": self.speed,
            "offset_seconds": self.offset_seconds,
        }


class EmulatedClock:
    """Monotonic emulated time in epoch seconds; never runs backwards."""

    def __init__(
        self,
        speed: float = 1.0,
        *,
        offset_seconds: float = 0.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_speed(speed)
        self._lock = threading.Lock()
        self._wall = wall
        self._monotonic = monotonic
        self._speed = speed
        # A starting offset may be negative: an API whose clock is behind its clients'.
        self._base = wall() + offset_seconds
        self._anchor = monotonic()

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    def advance(self, seconds: float) -> ClockState:
        if seconds < 0:
            raise ValueError("the emulated clock cannot go backwards")
        with self._lock:
            self._rebase(self._now_locked() + seconds)
            return self._state_locked()

    def set_speed(self, speed: float) -> ClockState:
        _check_speed(speed)
        with self._lock:
            self._rebase(self._now_locked())
            self._speed = speed
            return self._state_locked()

    def state(self) -> ClockState:
        with self._lock:
            return self._state_locked()

    def _now_locked(self) -> float:
        return self._base + (self._monotonic() - self._anchor) * self._speed

    def _rebase(self, now: float) -> None:
        self._base = now
        self._anchor = self._monotonic()

    def _state_locked(self) -> ClockState:
        now = self._now_locked()
        return ClockState(now=now, speed=self._speed, offset_seconds=now - self._wall())


def _check_speed(speed: float) -> None:
    if not 0 <= speed <= 1_000_000:
        raise ValueError("clock speed must be between 0 and 1,000,000")


def rfc3339(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")
