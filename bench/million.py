"""A million requests end to end, against the same run at 100,000 (issue 18).

Both sizes go through what `bench/end_to_end.py` measures: `enqueue_many`, a
real `celery worker` and `celery beat`, the emulator ending batches at once,
PostgreSQL. The million is enqueued in parts of 40,000 (one process holding a
million request dicts would measure the benchmark's memory, not batchline's),
back to back, with the service already running, as an application would
(a part refused with QueueFull is tried again after a pause).

Reported: the time at both sizes; each stage's cost per request at 1,000,000
against its cost at 100,000 (target <= 1.2), a stage's cost being the seconds
the worker's pool spent in its tasks (the clock's phases are reported beside,
unjudged: at a million they overlap); the worker's peak
memory (the highest `VmHWM` of the worker process and its pool children,
target <= 400 MB); the database's size per request. Only `--full` runs it (a
million requests take minutes even on a quiet machine).
"""

from __future__ import annotations

import math
import sys
import time
from functools import partial

from sqlalchemy import text

from batchline.database import make_engine
from batchline.errors import QueueFull
from batchline.producer import Producer
from bench import end_to_end as e2e
from bench.data import request_params
from bench.report import Emit, Figure, at_most

# Enqueued in parts of this many (see above): 65 MB, within the default
# BATCHLINE_MAX_QUEUE_BYTES (100 MB), so a part waits only for room, never for ever.
PART = 40_000
QUEUE_FULL_PAUSE_SECONDS = 0.2
MEMORY_TARGET_MB = 400.0
PER_REQUEST_TARGET = 1.2


def _enqueue_parts(producer: Producer, count: int) -> None:
    """`count` requests in parts of PART, each tried again while the intake queue is
    full, as an application would (a million requests are 1.6 GB)."""
    for first in range(0, count, PART):
        part = [request_params(i) for i in range(first, min(count, first + PART))]
        while True:
            try:
                producer.enqueue_many(part)
                break
            except QueueFull:
                time.sleep(QUEUE_FULL_PAUSE_SECONDS)


def measure(
    database_url: str, redis_url: str, emulator_url: str, count: int
) -> tuple[e2e.ServiceRun, int]:
    """One end-to-end run of `count` requests, and the database's size after it."""
    got = e2e.measure(
        database_url,
        redis_url,
        emulator_url,
        count,
        timeout=60 * 60,
        enqueue=partial(_enqueue_parts, count=count),
        # Room for the whole million in the intake queue (1.6 GB): with the
        # default 100 MB, enqueue waits for intake to make room, and its phase
        # then holds the pipeline's own work (a first run here: enqueue 367 s of
        # 623), so no phase's cost could be told apart.
        max_queue_bytes=2_000_000_000,
    )
    if got.failed:
        raise RuntimeError(f"{count:,} requests end to end: {got.note}")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            size = int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    finally:
        engine.dispose()
    return got, size


def run(
    database_url: str, redis_url: str, emulator_url: str, emit: Emit, count: int, targets: bool
) -> None:
    """`count` requests against a tenth of them (1,000,000 against 100,000 at full size)."""
    part = max(count // 10, 1)
    small, _ = measure(database_url, redis_url, emulator_url, part)
    print(f"  million case: {part:,} final in {small.total:.1f} s", file=sys.stderr, flush=True)
    big, database_bytes = measure(database_url, redis_url, emulator_url, count)
    for one in (small, big):
        emit(Figure(f"end to end {one.count:,} (million case)", one.total, "s", note=one.note))
    emit(
        Figure(
            f"  worker peak memory at {count:,}",
            big.worker_peak_mb,
            "MB",
            at_most(MEMORY_TARGET_MB) if targets else None,
            "highest VmHWM of the worker and its pool",
        )
    )
    emit(Figure(f"  worker peak memory at {part:,}", small.worker_peak_mb, "MB"))
    emit(
        Figure(
            f"  database size per request at {count:,}",
            database_bytes / count,
            "bytes",
            note=f"{database_bytes / 1e9:.2f} GB in all, requests and results",
        )
    )
    # The cost of each stage: the enqueue call's own time, then the seconds the
    # worker's pool spent in each stage's tasks (end_to_end.task_seconds). Judged.
    stages = [("enqueue", small.enqueue, big.enqueue)] + [
        (f"{name} (worker busy)", _busy(small, tasks), _busy(big, tasks))
        for name, tasks in BUSY_STAGES
    ]
    stages.append(("whole run", small.total, big.total))
    for name, at_small, at_big in stages:
        _ratio(emit, name, at_small, at_big, part, count, targets)
    # Beside them, not judged: the seconds in which at least one of a stage's
    # tasks ran. Busy seconds count twice two of a stage's tasks running at
    # once; at a million two creates often do, each waiting for the other at
    # the API (bench/README.md), so this shows how much of the busy figure
    # is that wait.
    for name, tasks in BUSY_STAGES:
        at_small = e2e.occupied_seconds(small.spans, tasks)
        at_big = e2e.occupied_seconds(big.spans, tasks)
        _ratio(emit, f"{name} (worker occupied)", at_small, at_big, part, count, False)
    # The clock's phases beside them, not judged: at a million they overlap (the
    # batches are cut, sent and read back at once), so each holds waits for the
    # others, and a phase's length is not its cost (bench/README.md).
    for (name, _), at_small, at_big in zip(e2e.PHASES, small.phases, big.phases, strict=True):
        _ratio(emit, f"{name} (clock phase)", at_small, at_big, part, count, False)


# Each stage's tasks. The intake task cuts a batch as soon as one is full, so
# the cut is counted with intake; the sweep finds the batches due for a poll.
BUSY_STAGES = (
    ("intake and cut", ("intake",)),
    ("submit", ("submit_batch",)),
    ("poll", ("sweep", "poll_batch")),
    ("ingest", ("ingest_batch",)),
)


def _busy(run: e2e.ServiceRun, tasks: tuple[str, ...]) -> float:
    return sum(run.busy.get(task, 0.0) for task in tasks)


def _ratio(
    emit: Emit,
    name: str,
    at_small: float,
    at_big: float,
    part: int,
    count: int,
    targets: bool,
) -> None:
    per_small, per_big = at_small / part, at_big / count
    ratio = per_big / per_small if per_small > 0 else math.nan
    # A stage that takes (almost) no time at 100,000 (the API's processing, the
    # poll) has no per-request cost to compare: reported, not judged.
    judged = targets and at_small >= 0.5
    emit(
        Figure(
            f"  {name}: cost a request at {count:,} / at {part:,}",
            ratio,
            "ratio",
            at_most(PER_REQUEST_TARGET) if judged else None,
            f"{at_small:.2f} s at {part:,}, {at_big:.2f} s at {count:,}",
        )
    )
