"""The chaos run: real processes, real faults, then an accounting of every request.

Shared by `tests/fault/test_chaos.py` (CI scale) and `harness/run_chaos.py` (by hand,
e.g. 20,000 requests over 10 minutes). While requests are enqueued in chunks,
>= 2 `celery worker`s and `celery beat` run against PostgreSQL (through a
`TcpProxy` that plays an outage), a private AOF `redis-server` (SIGKILLed and
restarted once) and the emulator injecting faults on every endpoint; workers
are SIGKILLed at random moments and restarted, and a second beat runs for a
while. After the faults stop, the run waits (bounded) until every request is
final, then counts over SQL and the emulator's own records.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from batchline.database import make_engine
from batchline.domain.states import TERMINAL_BATCH_STATES, TERMINAL_REQUEST_STATES
from batchline.emulator import EmulatorServer, FaultConfig
from batchline.emulator.admin import Records
from batchline.producer import Item, Producer
from batchline.settings import Settings
from bench.environment import scratch_postgres
from harness.processes import ServiceProcesses, service_env
from harness.redis_server import PrivateRedis
from harness.tcp_proxy import TcpProxy

Say = Callable[[str], None]

SERVICE_SETTINGS = {
    "BATCHLINE_MAX_WAIT_SECONDS": "1",
    "BATCHLINE_POLL_INTERVAL_SECONDS": "1",
    "BATCHLINE_INTAKE_INTERVAL_SECONDS": "0.5",
    "BATCHLINE_RECONCILE_INTERVAL_SECONDS": "2",
    "BATCHLINE_CREATE_TIMEOUT_SECONDS": "5",
    "BATCHLINE_CLOCK_SKEW_SECONDS": "5",
    "BATCHLINE_INTAKE_RECLAIM_SECONDS": "5",
    "BATCHLINE_INGEST_LEASE_SECONDS": "10",
    "BATCHLINE_MAX_ATTEMPTS": "5",
    "BATCHLINE_PRIME_MIN_GROUP": "0",
}

# Faults on every endpoint; one lost create; some requests errored or expired.
CHAOS_FAULTS = FaultConfig(
    seed=8,
    http_errors={
        "create": {429: 0.1, 529: 0.05, 500: 0.05},
        "retrieve": {500: 0.05, 429: 0.05},
        "list": {529: 0.1},
        "results": {500: 0.1},
        "*": {500: 0.05},
    },
    lost_create_responses=1,
    errored_rate=0.05,
    # Not billing/authentication/permission errors: those pause submission until
    # a person acts (by design), which a chaos run cannot do.
    error_types=(
        "api_error",
        "overloaded_error",
        "invalid_request_error",
        "rate_limit_error",
        "timeout_error",
    ),
    expired_rate=0.03,
    processing_seconds=1.0,
)


@dataclass(frozen=True)
class ChaosPlan:
    requests: int = 3_000
    fault_seconds: float = 90.0
    settle_seconds: float = 240.0
    workers: int = 2
    concurrency: int = 2
    kills: int = 12
    max_batch_requests: int = 500
    outage_seconds: float = 5.0
    seed: int = 8


@dataclass
class ChaosFigures:
    accepted: int = 0
    refused_chunks: int = 0
    sql_requests: int = 0
    states: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    not_final: list[str] = field(default_factory=list)
    double_success: list[str] = field(default_factory=list)
    succeeded_without_result: list[str] = field(default_factory=list)
    unknown_remote: list[str] = field(default_factory=list)
    batches: dict[str, int] = field(default_factory=dict)
    adopted_batches: int = 0
    remote_batches: int = 0
    creates: int = 0
    lost_create_responses: int = 0
    duplicate_results: int = 0
    results: int = 0
    cut_streams_seen: int = 0
    worker_kills: int = 0
    redis_kills: int = 0
    pg_outages: int = 0
    second_beat: bool = False
    seconds: float = 0.0
    settle_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.not_final
            or self.double_success
            or self.succeeded_without_result
            or self.unknown_remote
        )

    def lines(self) -> list[str]:
        def some(xs: list[str]) -> str:
            return f"{len(xs)}" + (f" e.g. {xs[:5]}" if xs else "")

        return [
            f"accepted enqueues        {self.accepted} (chunks refused while Redis was down: "
            f"{self.refused_chunks})",
            f"requests in SQL          {self.sql_requests}  states {self.states}",
            f"lost (accepted, not SQL) {some(self.lost)}",
            f"not in a terminal state  {some(self.not_final)}",
            f"two non-dup successes    {some(self.double_success)}",
            f"succeeded, no result     {some(self.succeeded_without_result)}",
            f"remote batches unknown   {some(self.unknown_remote)}",
            f"batches in SQL           {self.batches} (adopted: {self.adopted_batches})",
            f"emulator batches         {self.remote_batches}; creates {self.creates}; "
            f"lost create answers {self.lost_create_responses}",
            f"results rows             {self.results}; duplicate spend (results.duplicate) "
            f"{self.duplicate_results}",
            f"results downloads broken {self.cut_streams_seen} (5xx or cut midway; retried)",
            f"faults                   worker kills {self.worker_kills}, redis kills "
            f"{self.redis_kills}, pg outages {self.pg_outages}, second beat {self.second_beat}",
            f"duration                 {self.seconds:.0f} s (settling after faults "
            f"{self.settle_seconds:.0f} s)",
            "VERDICT                  " + ("no loss" if self.ok else "LOSS OR DAMAGE"),
        ]


def request_params(i: int) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": f"chaos request {i}: say hello"}],
    }


def scratch_database(admin_url: str) -> AbstractContextManager[str]:
    """A fresh, migrated PostgreSQL database; dropped after."""
    return scratch_postgres(admin_url, "batchline_chaos")


class ChaosRun:
    def __init__(self, plan: ChaosPlan, work_dir: Path, db_url: str, say: Say = print) -> None:
        self.plan = plan
        self.work_dir = work_dir
        self.db_url = db_url
        self.say = say
        self.rng = random.Random(plan.seed)
        self.figures = ChaosFigures()
        self.accepted: set[str] = set()
        self._next_item = 0

    def run(self) -> ChaosFigures:
        started = time.monotonic()
        target = make_url(self.db_url)
        redis_server = PrivateRedis(self.work_dir / "redis")
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        emulator = EmulatorServer(processing_seconds=1.0, faults=CHAOS_FAULTS)
        procs: ServiceProcesses | None = None
        threads: list[threading.Thread] = []
        try:
            redis_server.start()
            proxy.start()
            emulator.start()
            proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
            env = service_env(
                proxied,
                redis_server.url,
                emulator.base_url,
                **SERVICE_SETTINGS,
                BATCHLINE_MAX_BATCH_REQUESTS=str(self.plan.max_batch_requests),
            )
            procs = ServiceProcesses(env, self.work_dir)
            workers = [f"worker-{n}" for n in range(self.plan.workers)]
            for name in workers:
                procs.worker(name, concurrency=self.plan.concurrency)
            procs.beat()
            self._fault_phase(procs, workers, redis_server, proxy, emulator, threads)
            for thread in threads:
                thread.join(timeout=60)
            emulator.admin().set_faults(FaultConfig(processing_seconds=1.0))
            for name in workers:
                if name not in procs.procs or procs.procs[name].poll() is not None:
                    procs.worker(name, concurrency=self.plan.concurrency)
            settle_start = time.monotonic()
            self._settle(emulator)
            self.figures.settle_seconds = time.monotonic() - settle_start
            self._account(emulator.records())
            self.figures.cut_streams_seen = sum(
                procs.log(name).count(needle)
                for name in workers
                for needle in ("incomplete chunked read", "ingest_batch_task: ApiUnavailable")
            )
        finally:
            if procs is not None:
                for name in list(procs.procs):
                    procs.kill(name)
            emulator.stop()
            proxy.stop()
            redis_server.stop()
        self.figures.redis_kills = redis_server.kills
        self.figures.pg_outages = proxy.outages
        self.figures.seconds = time.monotonic() - started
        return self.figures

    # -- the fault phase ---------------------------------------------------

    def _fault_phase(
        self,
        procs: ServiceProcesses,
        workers: list[str],
        redis_server: PrivateRedis,
        proxy: TcpProxy,
        emulator: EmulatorServer,
        threads: list[threading.Thread],
    ) -> None:
        span = self.plan.fault_seconds
        admin = emulator.admin()

        def restart_redis() -> None:
            self.say("chaos: SIGKILL redis-server, restart from its AOF")
            redis_server.kill()
            time.sleep(1.0)
            redis_server.start()

        def pg_outage() -> None:
            self.say(f"chaos: PostgreSQL refuses connections for {self.plan.outage_seconds} s")
            thread = threading.Thread(target=proxy.outage, args=(self.plan.outage_seconds,))
            thread.start()
            threads.append(thread)

        def second_beat(on: bool) -> Callable[[], None]:
            def act() -> None:
                if on:
                    self.say("chaos: a second beat starts")
                    procs.beat("beat-2")
                    self.figures.second_beat = True
                else:
                    self.say("chaos: the second beat stops")
                    procs.kill("beat-2")

            return act

        def cut_results(limit: int | None) -> Callable[[], None]:
            def act() -> None:
                self.say(f"chaos: results_cut_after_bytes={limit}")
                admin.update_faults(results_cut_after_bytes=limit)

            return act

        events = self._events(procs, workers, restart_redis, pg_outage, second_beat, cut_results)
        chunks = max(1, min(60, self.plan.requests // 50))
        chunk_size = -(-self.plan.requests // chunks)
        enqueue_span = 0.7 * span
        start = time.monotonic()
        with self._producer(redis_server.url) as producer:
            while True:
                now = time.monotonic() - start
                while events and events[0][0] <= now:
                    events.pop(0)[2]()
                due = min(chunks, int(now / enqueue_span * chunks) + 1)
                while self._next_item < self.plan.requests and self._chunks_sent(chunk_size) < due:
                    self._enqueue_chunk(producer, chunk_size)
                if now >= span and not events and self._next_item >= self.plan.requests:
                    return
                self._check_overrun(now)
                time.sleep(0.05)

    def _events(
        self,
        procs: ServiceProcesses,
        workers: list[str],
        restart_redis: Callable[[], None],
        pg_outage: Callable[[], None],
        second_beat: Callable[[bool], Callable[[], None]],
        cut_results: Callable[[int | None], Callable[[], None]],
    ) -> list[tuple[float, str, Callable[[], None]]]:
        span = self.plan.fault_seconds
        events: list[tuple[float, str, Callable[[], None]]] = [
            (0.20 * span, "cut", cut_results(3_000)),
            (0.20 * span + 8, "uncut", cut_results(None)),
            (0.30 * span, "beat2", second_beat(True)),
            (0.45 * span, "redis", restart_redis),
            (0.60 * span, "pg", pg_outage),
            (0.75 * span, "beat2-off", second_beat(False)),
        ]
        for moment in sorted(self.rng.uniform(0.02, 0.95) * span for _ in range(self.plan.kills)):
            events.append((moment, "kill", lambda: self._kill_worker(procs, workers)))
        events.sort(key=lambda e: e[0])
        return events

    def _check_overrun(self, now: float) -> None:
        if now > self.plan.fault_seconds + 120:
            raise AssertionError("chaos: fault phase overran by 120 s")

    def _chunks_sent(self, chunk_size: int) -> int:
        return -(-self._next_item // chunk_size)

    def _kill_worker(self, procs: ServiceProcesses, workers: list[str]) -> None:
        name = self.rng.choice(workers)
        procs.kill(name)
        self.figures.worker_kills += 1
        self.say(f"chaos: SIGKILL {name} (kill {self.figures.worker_kills}), restart")
        procs.worker(name, concurrency=self.plan.concurrency)

    @contextmanager
    def _producer(self, redis_url: str) -> Iterator[Producer]:
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        settings = Settings(database_url=self.db_url, redis_url=redis_url)
        with Producer(settings, client) as producer:
            yield producer

    def _enqueue_chunk(self, producer: Producer, size: int) -> None:
        first = self._next_item
        last = min(self.plan.requests, first + size)
        items = [Item(request_params(i)) for i in range(first, last)]
        deadline = time.monotonic() + 60
        while True:
            try:
                handles = producer.enqueue_many(items)
                break
            except redis.RedisError:
                # Not accepted: the application would retry, and so do we
                # (new ids; any part written before the error is extra, not lost).
                self.figures.refused_chunks += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.accepted.update(h.id for h in handles)
        self.figures.accepted = len(self.accepted)
        self._next_item = last

    # -- settling and accounting -------------------------------------------

    def _settle(self, emulator: EmulatorServer) -> None:
        engine = make_engine(self.db_url)
        try:
            deadline = time.monotonic() + self.plan.settle_seconds
            last_note = 0.0
            while time.monotonic() < deadline:
                open_requests, open_batches, missing = self._open_work(engine, emulator)
                if not open_requests and not open_batches and not missing:
                    return
                if time.monotonic() - last_note > 10:
                    self.say(
                        f"chaos: settling: {open_requests} requests not final or not in SQL, "
                        f"{open_batches} batches open, {missing} remote batches unknown"
                    )
                    last_note = time.monotonic()
                time.sleep(1.0)
            self.say("chaos: settling timed out; counting what is there")
        finally:
            engine.dispose()

    def _open_work(self, engine: Engine, emulator: EmulatorServer) -> tuple[int, int, int]:
        terminal = _sql_list(s.value for s in TERMINAL_REQUEST_STATES)
        done_batches = _sql_list(s.value for s in TERMINAL_BATCH_STATES)
        with engine.connect() as conn:
            final = conn.execute(
                text(f"SELECT count(*) FROM requests WHERE state IN {terminal}")
            ).scalar_one()
            not_final = conn.execute(
                text(f"SELECT count(*) FROM requests WHERE state NOT IN {terminal}")
            ).scalar_one()
            open_batches = conn.execute(
                text(f"SELECT count(*) FROM batches WHERE state NOT IN {done_batches}")
            ).scalar_one()
            known = {r for (r,) in conn.execute(text("SELECT remote_id FROM batches"))}
        remote = {b.id for b in emulator.records().batches}
        open_requests = max(0, len(self.accepted) - final) + not_final
        return open_requests, open_batches, len(remote - known)

    def _account(self, records: Records) -> None:
        f = self.figures
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT id, state FROM requests"))
                states: dict[str, str] = {str(i): str(state) for i, state in rows}
                successes = Counter(
                    r
                    for (r,) in conn.execute(
                        text(
                            "SELECT request_id FROM results "
                            "WHERE result_type = 'succeeded' AND NOT duplicate"
                        )
                    )
                )
                batch_rows = conn.execute(text("SELECT remote_id, state, origin FROM batches"))
                batches = batch_rows.all()
                f.results = conn.execute(text("SELECT count(*) FROM results")).scalar_one()
                f.duplicate_results = conn.execute(
                    text("SELECT count(*) FROM results WHERE duplicate")
                ).scalar_one()
        finally:
            engine.dispose()
        terminal = {s.value for s in TERMINAL_REQUEST_STATES}
        f.sql_requests = len(states)
        f.states = dict(Counter(states.values()))
        f.lost = sorted(self.accepted - states.keys())
        f.not_final = sorted(i for i, s in states.items() if s not in terminal)
        f.double_success = sorted(i for i, n in successes.items() if n > 1)
        f.succeeded_without_result = sorted(
            i for i, s in states.items() if s == "succeeded" and successes[i] != 1
        )
        f.batches = dict(Counter(state for _, state, _ in batches))
        f.adopted_batches = sum(origin == "adopted" for *_, origin in batches)
        known = {remote for remote, *_ in batches}
        f.unknown_remote = sorted(b.id for b in records.batches if b.id not in known)
        f.remote_batches = len(records.batches)
        f.creates = records.creates
        f.lost_create_responses = records.lost_create_responses


def _sql_list(values: Iterable[str]) -> str:
    # Constant state names from the domain enums, never user input.
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"
