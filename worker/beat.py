"""A beat scheduler that only sends while it holds a Redis lock, and only what
there is work for.

Exactly one beat should run; a second one started by mistake finds the lock
held and stays idle, taking over only if the first stops renewing it. (Even
without the lock a double tick would be harmless: every task is idempotent.)

The beat holding the lock also watches Redis every few seconds: it counts
requests Redis lost (batchline.losses), and when Redis is full, so that no
tick could be sent, it moves the intake stream into SQL itself (batchline.relief).

An idle service sends almost nothing (Flower shows every task): the intake
tick goes only while the intake stream holds entries or SQL has queued
requests; the sweep only while a batch is in flight or a callback is due;
reconcile at most once a minute while no batch is in flight; the deadline scan
only while an unsettled request has a deadline. The checks are one XLEN and two
SQL queries, made here in the scheduler; when they fail the
tick is sent anyway, since a needless wake-up costs little and a missed one
delays work.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery.beat import Scheduler
from sqlalchemy.orm import Session, sessionmaker

from batchline import runtime, snapshots
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.redis_health import make_client
from batchline.database import make_engine, make_session_factory
from batchline.keys import RedisKeys

log = logging.getLogger("batchline.beat")

LOCK_TTL_MS = 30_000
IDLE_INTERVAL = 5.0
WATCH_SECONDS = 5.0
# While idle, reconcile (which also lifts a refused-key pause) runs this often.
IDLE_RECONCILE_SECONDS = 60.0
WATCHED_TASKS = (
    "batchline.intake",
    "batchline.sweep",
    "batchline.reconcile",
    "batchline.deadlines",
)
# One look at Redis and SQL serves the ticks due within this long.
WORK_CHECK_SECONDS = 0.5

# Take the lock if free, or renew it if ours; one round trip, so two beats
# can never both believe they hold it. allow-oom: a beat must take the lock
# even when Redis is full, to run the relief that frees it.
_ACQUIRE_OR_RENEW = """#!lua flags=allow-oom
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Work:
    intake: bool  # entries in the intake stream, or requests queued in SQL
    in_flight: bool  # a batch not yet final, or a callback still to send
    deadlines: bool = True  # an unsettled request with a deadline, or a fallback open


class LockedScheduler(Scheduler):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = runtime.settings()
        self._redis = make_client(config)
        keys = RedisKeys(config.stream_key_prefix)
        self._key = keys.beat_lock
        self._stream = RedisIntakeStream(self._redis, keys)
        self._sessions: sessionmaker[Session] | None = None
        self._watched_at = 0.0
        self._snapped_at = 0.0
        self._snapshot_every = config.dashboard_snapshot_seconds
        self._lost = 0
        self._stream_prefix = config.stream_key_prefix
        self._token = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._script = self._redis.register_script(_ACQUIRE_OR_RENEW)
        self._holding: bool | None = None
        self._database_url = config.database_url
        self._engine: Any = None
        self._work: Work | None = None
        self._work_checked = 0.0
        self._last_reconcile = 0.0
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        # The entry was already moved to its next run: skipping loses nothing.
        if not self._needed(entry.task):
            log.debug("beat: nothing for %s, not sent", entry.task)
            return
        super().apply_entry(entry, producer=producer)

    def _needed(self, task: str) -> bool:
        if task not in WATCHED_TASKS:
            return True
        work = self._current_work()
        if work is None:
            return True
        if task == "batchline.deadlines":
            return work.deadlines
        if task == "batchline.intake":
            return work.intake
        if task == "batchline.sweep":
            return work.in_flight
        now = time.monotonic()
        if work.in_flight or now - self._last_reconcile >= IDLE_RECONCILE_SECONDS:
            self._last_reconcile = now
            return True
        return False

    def _current_work(self) -> Work | None:
        now = time.monotonic()
        if now - self._work_checked < WORK_CHECK_SECONDS:
            return self._work
        self._work_checked = now
        try:
            self._work = self._look_for_work()
        except Exception as exc:  # send everything rather than stall on a failed look
            log.debug("beat could not check for work (%s): sending the tick", exc)
            self._work = None
        return self._work

    def _look_for_work(self) -> Work:
        from batchline.adapters.queries import pending_work
        from batchline.adapters.sql.fallback import has_deadline_work
        from batchline.database import make_engine

        if self._engine is None:
            self._engine = make_engine(self._database_url, pool_size=1)
        queued, in_flight = pending_work(self._engine)
        deadlines = has_deadline_work(self._engine)
        stream = int(self._redis.xlen(RedisKeys(self._stream_prefix).intake_stream))
        return Work(intake=stream > 0 or queued, in_flight=in_flight, deadlines=deadlines)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lock():
            return IDLE_INTERVAL
        if time.monotonic() - self._watched_at >= WATCH_SECONDS:
            self._watched_at = time.monotonic()
            self._watch_redis()
        if time.monotonic() - self._snapped_at >= self._snapshot_every:
            self._snapped_at = time.monotonic()
            self._snapshot()
        return float(super().tick(*args, **kwargs))

    def _watch_redis(self) -> None:
        from batchline.losses import observe
        from batchline.relief import drain_if_full, redis_full

        config = runtime.settings()
        try:
            if redis_full(config, self._redis):
                drain_if_full(config)
            if self._sessions is None:
                self._sessions = make_session_factory(make_engine(config.database_url))
            report = observe(self._sessions, self._stream)
        except Exception as exc:  # watching is best effort; the next tick tries again
            log.warning("could not watch Redis for losses: %s: %s", type(exc).__name__, exc)
            return
        if report.lost > self._lost:
            log.error(
                "Redis lost %d accepted requests before they reached SQL (a restart or "
                "flush without persistence); their handles report `lost`",
                report.lost - self._lost,
            )
        self._lost = report.lost

    def _snapshot(self) -> None:
        config = runtime.settings()
        try:
            if self._sessions is None:
                self._sessions = make_session_factory(make_engine(config.database_url))
            depth = self._stream.depth()
            snapshots.take(self._sessions, datetime.now(UTC), depth)
        except Exception as exc:  # charts miss a point; the next minute tries again
            log.warning("could not take a snapshot: %s: %s", type(exc).__name__, exc)

    def _hold_lock(self) -> bool:
        try:
            held = bool(self._script(keys=[self._key], args=[self._token, LOCK_TTL_MS]))
        except redis.RedisError as exc:
            log.warning("beat lock unavailable (%s); not sending this tick", exc)
            held = False
        if held != self._holding:
            if held:
                log.warning("beat took the lock: this beat sends the schedule")
            else:
                log.warning("another beat holds the lock: this beat stays idle")
            self._holding = held
        return held

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._holding:
            self._redis.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                1,
                self._key,
                self._token,
            )
        super().close()
