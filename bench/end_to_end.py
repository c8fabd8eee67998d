"""End to end: `enqueue_many` of `count` requests until every one is final in SQL.

This is the number a user feels: real `celery worker` and `celery beat`
processes, the emulator (its batches end at once), and the caller's database.
The total alone does not say where time goes, so it is split into phases, each
ending at a timestamp the pipeline itself records in SQL (all in UTC):

    enqueue   the enqueue_many call                    this process's clock
    intake    -> last request written to SQL           max(requests.created_at)
    assemble  -> last batch's create begun             max(batches.submit_started_at)
              (waits max_wait_seconds, cuts the batch, queues its submit task)
    submit    -> last batch created at the API         max(batches.submitted_at)
    API       -> last batch ended at the API           max(batches.remote_ended_at)
    poll      -> last batch's first results read       max per batch of min(results.created_at)
    ingest    -> last batch ingested                   max(batches.ingested_at)
    tail      -> last request final, if later          max(requests.finished_at)

Steps stamp their clock before their SQL work, so a phase also holds the
last write of the step before it (intake's last chunk lands in "assemble").
The end is the later of the last two: a request's finished_at is stamped
before its chunk commits, its batch's ingested_at after. When several batches
are cut their phases overlap; each phase is then the step of the latest batch
past the previous boundary (kept in order), so the phases add up to the total.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, func, select

from batchline.database import READ_ONLY, make_engine
from batchline.domain.states import TERMINAL_BATCH_STATES, TERMINAL_REQUEST_STATES
from batchline.keys import RedisKeys
from batchline.local import child_env
from batchline.models import Batch, Request, Result
from batchline.producer import Producer
from batchline.settings import Settings
from bench.data import request_bodies
from bench.environment import EMULATOR_KEY, WHOLE_RUN_QUEUE_BYTES, fresh_database, fresh_redis
from bench.report import Emit, Figure

# Its own stream and beat lock: other benchmarks use "bench" on the same Redis db.
PREFIX = "bench-e2e"
REPO = Path(__file__).resolve().parent.parent
CELERY = [sys.executable, "-m", "celery", "-A", "batchline"]
# A name of its own, and no start-up chatter with other workers on the broker.
WORKER_FLAGS = ("-n", "bench@%h", "--without-mingle", "--without-gossip")
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 5.0
READY_SECONDS = 60.0
STOP_SECONDS = 15.0
LOG_TAIL_LINES = 60
# Phase names and what each one ends at (see the module docstring).
PHASES = (
    ("intake", "to the last request in SQL"),
    ("assemble", "to the last create begun: max_wait, the cut, the task queue"),
    ("submit", "to the last batch created at the API"),
    ("API processing", "to the last batch ended at the API"),
    ("poll", "to the last batch's first results read: poll delay"),
    ("ingest", "to the last batch ingested"),
    ("tail", "to the last request final, after ingestion"),
)


# Celery's own line for each task run, in the text and the JSON log format alike.
_TASK_DONE = re.compile(rb"Task (batchline\.\w+)\[[^\]]*\] succeeded in ([0-9.e+-]+)s")


def task_seconds(log: bytes) -> dict[str, float]:
    """Seconds the worker's pool spent in each task, summed from its log: the cost
    of each stage even where stages overlap in time (a million requests' batches
    are cut, sent and read back at once, so no clock mark separates them)."""
    busy: dict[str, float] = {}
    for name, seconds in _TASK_DONE.findall(log):
        task = name.decode().removeprefix("batchline.")
        busy[task] = busy.get(task, 0.0) + float(seconds)
    return busy


# The same line in the text log format, with the time it was written (the task's end).
_TASK_DONE_AT = re.compile(
    rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?"
    rb"Task (batchline\.\w+)\[[^\]]*\] succeeded in ([0-9.e+-]+)s",
    re.MULTILINE,
)


Span = tuple[str, float, float]  # task name, its start and end (epoch seconds)


def task_spans(log: bytes) -> list[Span]:
    """When each batchline task ran, from the text log's task lines (the line is
    written at the task's end, and says how long it ran)."""
    spans = []
    for stamp, name, seconds in _TASK_DONE_AT.findall(log):
        end = datetime.strptime(stamp.decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        spans.append((name.decode().removeprefix("batchline."), end - float(seconds), end))
    return spans


def occupied_seconds(spans: list[Span], tasks: tuple[str, ...]) -> float:
    """Seconds in which at least one of `tasks` was running. Busy seconds count
    twice the time two such tasks run at once (two creates queued behind each
    other at the API, say); this counts it once. Reported beside the busy
    seconds, to show how much of them is such waiting."""
    total, start, end = 0.0, -math.inf, -math.inf
    for first, last in sorted((first, last) for name, first, last in spans if name in tasks):
        if first > end:
            total += end - start if end > start else 0.0
            start, end = first, last
        else:
            end = max(end, last)
    return total + (end - start if end > start else 0.0)


def _settings(
    database_url: str, redis_url: str, emulator_url: str, max_batch_requests: int = 100_000
) -> Settings:
    # One batch for the whole run when it arrives in time (the API's limits),
    # unless told otherwise, and short intervals, so the figure is the
    # pipeline's work, not its waits.
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        api_key=EMULATOR_KEY,
        base_url=emulator_url,
        max_batch_requests=max_batch_requests,
        max_batch_bytes=256_000_000,
        max_wait_seconds=1.0,
        poll_interval_seconds=1.0,
        intake_interval_seconds=0.5,
        max_queue_bytes=WHOLE_RUN_QUEUE_BYTES,
        stream_key_prefix=PREFIX,
    )


def _env(settings: Settings) -> dict[str, str]:
    env = child_env(settings)
    env["BATCHLINE_LOG_FORMAT"] = "text"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process group (warm shutdown), then SIGKILL to what is left."""
    for sig, grace in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
        running = [p for p in procs if p.poll() is None]
        for proc in running:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        for proc in running:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))


@contextmanager
def _worker_and_beat(env: dict[str, str], workdir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """A `celery worker` and a `celery beat`, as in production; both always stopped."""
    log_path = workdir / "worker.log"
    commands = [
        [*CELERY, "worker", "--concurrency=2", "--loglevel=INFO", *WORKER_FLAGS],
        [*CELERY, "beat", "-s", str(workdir / "beat-schedule"), "--loglevel=INFO"],
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with log_path.open("ab") as log:
            for args in commands:
                procs.append(
                    subprocess.Popen(
                        args,
                        env=env,
                        cwd=REPO,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield procs
    finally:
        _stop(procs)


def _log_tail(workdir: Path) -> None:
    path = workdir / "worker.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    print(f"--- last {LOG_TAIL_LINES} lines of {path} ---", file=sys.stderr)
    for line in lines[-LOG_TAIL_LINES:]:
        print(line, file=sys.stderr)


def _wait_ready(client: redis.Redis, procs: list[subprocess.Popen[bytes]], log_path: Path) -> None:
    """Until the worker says it is ready and beat holds its lock. (The first intake
    is no sign any more: an idle beat sends none until there is work.)"""
    lock = RedisKeys(PREFIX).beat_lock
    deadline = time.monotonic() + READY_SECONDS
    while True:
        log = log_path.read_bytes() if log_path.exists() else b""
        if b" ready." in log and client.exists(lock):
            return
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("the worker or beat exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker and beat not ready within {READY_SECONDS:.0f}s")
        time.sleep(0.1)


def _final_count(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(Request.state.in_(list(TERMINAL_REQUEST_STATES)))
        return int(conn.scalar(query) or 0)


def _open_batches(engine: Engine) -> int:
    # A batch's last requests turn final a commit before it is marked ingested.
    with engine.connect() as conn:
        query = select(func.count()).where(Batch.state.not_in(list(TERMINAL_BATCH_STATES)))
        return int(conn.scalar(query) or 0)


def _wait_all_final(
    engine: Engine, count: int, deadline: float, procs: list[subprocess.Popen[bytes]]
) -> str:
    """Poll SQL until all `count` are final: "" then, else why it stopped waiting."""
    next_progress = time.monotonic() + PROGRESS_SECONDS
    while True:
        done = _final_count(engine)
        if done >= count and _open_batches(engine) == 0:
            return ""
        now = time.monotonic()
        if any(p.poll() is not None for p in procs):
            return "the worker or beat exited"
        if now >= deadline:
            return "timed out"
        if now >= next_progress:
            print(f"  end to end: {done:,} / {count:,} final", file=sys.stderr, flush=True)
            next_progress = now + PROGRESS_SECONDS
        time.sleep(POLL_SECONDS)


def _epoch(value: object) -> float:
    """Seconds since the epoch of a SQL timestamp (stored in UTC); nan when absent."""
    if value is None:
        return math.nan
    if isinstance(value, str):  # SQLite without the column type applied
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _timeline(engine: Engine) -> tuple[list[float], int, str]:
    """Phase ends (epoch seconds, in PHASES order), batch count, requests by state."""
    with engine.connect() as conn:
        intake, last_final = conn.execute(
            select(func.max(Request.created_at), func.max(Request.finished_at))
        ).one()
        batches, cut, submitted, ended, ingested = conn.execute(
            select(
                func.count(),
                func.max(Batch.submit_started_at),
                func.max(Batch.submitted_at),
                func.max(Batch.remote_ended_at),
                func.max(Batch.ingested_at),
            ).select_from(Batch)
        ).one()
        # The poll that saw a batch end is not stamped; the first result rows
        # of the ingestion it starts are (stamped once their lines are read).
        first = select(func.min(Result.created_at).label("at")).group_by(Result.batch_id).subquery()
        polled = conn.scalar(select(func.max(first.c.at)))
        states = conn.execute(
            select(Request.state, func.count()).group_by(Request.state).order_by(Request.state)
        ).all()
    marks = [_epoch(m) for m in (intake, cut, submitted, ended, polled, ingested, last_final)]
    summary = ", ".join(f"{n:,} {s}" for s, n in states)
    return marks, int(batches), summary


def _phases(start: float, marks: list[float]) -> list[float]:
    """Seconds of each phase from its start to its end mark, ends kept in order."""
    end = max((m for m in marks[-2:] if not math.isnan(m)), default=start)
    phases, previous = [], start
    for mark in marks:
        # With overlapping batches an end can precede the previous one (the API's
        # batch ends before create returns): that phase took no time of its own.
        bound = previous if math.isnan(mark) else min(max(mark, previous), end)
        phases.append(bound - previous)
        previous = bound
    return phases


def _emit(
    emit: Emit, label: str, count: int, enqueue: float, phases: list[float], note: str
) -> None:
    total = enqueue + sum(phases)
    emit(Figure(f"end to end {count:,} ({label})", total, "s", note=note))
    rate = count / total if total > 0 else math.nan
    emit(Figure(f"  results/s ({label})", rate, "req/s", note="enqueue start to last final"))
    emit(Figure(f"  enqueue ({label})", enqueue, "s", note="the enqueue_many call"))
    for (phase, what), seconds in zip(PHASES, phases, strict=True):
        emit(Figure(f"  {phase} ({label})", seconds, "s", note=what))


@dataclass
class ServiceRun:
    """One end-to-end run: its clock marks and, when asked, the service's memory."""

    count: int
    enqueue: float  # seconds of the enqueue_many call
    phases: list[float]  # seconds of each phase of PHASES; nan when it failed
    note: str
    failed: bool
    peak_pss: int = 0  # bytes: the most the worker, its children and beat held at once
    worker_peak_mb: float = math.nan  # the highest VmHWM of the worker and its pool
    busy: dict[str, float] = field(default_factory=dict)  # task name -> seconds (task_seconds)
    spans: list[Span] = field(default_factory=list)  # when each task ran (task_spans)

    @property
    def total(self) -> float:
        return self.enqueue + sum(self.phases)


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (read from /proc; gone ones skipped)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def _pss(pid: int) -> int:
    """Proportional set size of one process in bytes (0 once it is gone)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_mb(pids: list[int]) -> float:
    """The highest peak resident set (VmHWM) among `pids`, in MB (gone ones skipped)."""
    peak = 0
    for pid in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


def service_pss(procs: list[subprocess.Popen[bytes]]) -> int:
    """PSS summed over the worker, its pool children and beat: shared pages counted once."""
    return sum(_pss(pid) for proc in procs for pid in _descendants(proc.pid))


class PssSampler:
    """Samples `service_pss` in a thread while the run goes; keeps the highest sum.
    Once a second: reading smaps_rollup walks each page table (about 90 ms per GB
    measured here), which sampled more often would steal CPU from the service."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], every: float = 1.0) -> None:
        self._procs = procs
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.peak = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, service_pss(self._procs))
            self._stop.wait(self._every)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, service_pss(self._procs))


def measure(
    database_url: str,
    redis_url: str,
    emulator_url: str,
    count: int,
    timeout: float = 300.0,
    bodies: list[dict[str, Any]] | None = None,
    max_batch_requests: int = 100_000,
    enqueue: Callable[[Producer], object] | None = None,
    max_queue_bytes: int | None = None,
) -> ServiceRun:
    """Enqueue `count` requests and time them until all are final in SQL, sampling
    the service's PSS meanwhile. `enqueue` replaces the one `enqueue_many` of
    `bodies` (it must enqueue `count` requests); `max_queue_bytes` the intake
    queue's limit."""
    settings = _settings(database_url, redis_url, emulator_url, max_batch_requests)
    if max_queue_bytes is not None:
        settings = settings.replace(max_queue_bytes=max_queue_bytes)
    client = fresh_redis(redis_url)
    fresh_database(database_url)
    if enqueue is None:
        every = request_bodies(count) if bodies is None else bodies
        enqueue = partial(Producer.enqueue_many, items=every)
    engine = make_engine(database_url)
    # Reads only: on SQLite this poll never takes the write lock the worker needs.
    reads = engine.execution_options(**{READ_ONLY: True})
    producer = Producer(settings, client)
    failure = "did not start"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
            with _worker_and_beat(_env(settings), Path(scratch)) as procs:
                try:
                    _wait_ready(client, procs, Path(scratch) / "worker.log")
                    with PssSampler(procs) as sampler:
                        start = time.time()
                        enqueue(producer)
                        enqueued = time.time()
                        # The timeout counts from the enqueue's start, like the figure.
                        deadline = time.monotonic() + timeout - (enqueued - start)
                        failure = _wait_all_final(reads, count, deadline, procs)
                    # Read before the processes stop: VmHWM goes with them.
                    worker_peak = peak_rss_mb(_descendants(procs[0].pid))
                finally:
                    if failure:
                        _log_tail(Path(scratch))
            # Once the worker has stopped: the last task's line follows its commit.
            log = (Path(scratch) / "worker.log").read_bytes()
            busy, spans = task_seconds(log), task_spans(log)
        if failure:
            done = _final_count(reads)
            note = f"FAILED, {failure}: {done:,} of {count:,} final (timeout {timeout:.0f}s)"
            return ServiceRun(count, math.nan, [math.nan] * len(PHASES), note, True)
        marks, batches, states = _timeline(reads)
        phases = _phases(enqueued, marks)
        note = f"{batches} batch{'es' if batches != 1 else ''}; {states}"
        return ServiceRun(
            count, enqueued - start, phases, note, False, sampler.peak, worker_peak, busy, spans
        )
    finally:
        producer.close()
        engine.dispose()


def run(
    database_url: str,
    redis_url: str,
    emulator_url: str,
    count: int,
    label: str,
    emit: Emit,
    timeout: float = 300.0,
) -> None:
    """Enqueue `count` requests and report the seconds until all are final in SQL."""
    got = measure(database_url, redis_url, emulator_url, count, timeout)
    emit_run(emit, label, got)


def emit_run(emit: Emit, label: str, got: ServiceRun) -> None:
    _emit(emit, label, got.count, got.enqueue, got.phases, got.note)
