"""The chaos run: real processes, real faults, then an accounting of every request.

Shared by `tests/fault/test_chaos.py` (CI scale) and `harness/run_chaos.py` (by
hand, e.g. 20,000 requests over 10 minutes). `plan.workers` `celery worker`s at
`plan.concurrency` and `celery beat` run against PostgreSQL (through a
`TcpProxy` that plays an outage), a private AOF `redis-server` and the emulator
(its clock 10 minutes behind the workers', faults on every endpoint) behind a
`HostileApi` relay that spoils results. The run starts with a backlog of
`lost_creates` full batches whose creates are all made and answered 500; then,
while requests are enqueued in chunks, the faults of `harness/chaos_faults.py`
happen on schedule. After the faults stop, the run waits (bounded) until every
request is final, then counts (`harness/chaos_accounting.py`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from batchline.database import make_engine
from batchline.domain.states import TERMINAL_REQUEST_STATES
from batchline.emulator import EmulatorServer
from batchline.keys import RedisKeys
from batchline.producer import Item, Producer
from batchline.settings import Settings
from bench.environment import scratch_postgres
from harness import chaos_faults
from harness.chaos_accounting import ChaosFigures, account, sql_list
from harness.chaos_faults import REFUSED, Say, Stage
from harness.chaos_plan import (
    API_CLOCK_BEHIND_SECONDS,
    CHAOS_FAULTS,
    QUIET_FAULTS,
    SERVICE_SETTINGS,
    ChaosPlan,
    request_params,
)
from harness.hostile_api import HostileApi, StreamFault
from harness.processes import ServiceProcesses, service_env, wait_for
from harness.redis_server import PrivateRedis
from harness.tcp_proxy import TcpProxy

__all__ = ["ChaosFigures", "ChaosPlan", "ChaosRun", "scratch_database"]


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
        self.figures = ChaosFigures(recovery_bound_seconds=plan.recovery_bound_seconds)
        self.accepted: set[str] = set()
        self._next_item = 0

    def run(self) -> ChaosFigures:
        started = time.monotonic()
        target = make_url(self.db_url)
        redis_server = PrivateRedis(self.work_dir / "redis")
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        emulator = EmulatorServer(
            processing_seconds=1.0,
            faults=CHAOS_FAULTS,
            clock_offset_seconds=-API_CLOCK_BEHIND_SECONDS,
        )
        relay: HostileApi | None = None
        procs: ServiceProcesses | None = None
        try:
            redis_server.start()
            proxy.start()
            emulator.start()
            relay = HostileApi(emulator.base_url).start()
            proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
            env = service_env(
                proxied,
                redis_server.url,
                relay.base_url,
                **SERVICE_SETTINGS,
                BATCHLINE_MAX_BATCH_REQUESTS=str(self.plan.max_batch_requests),
            )
            procs = ServiceProcesses(env, self.work_dir)
            workers = [f"worker-{n}" for n in range(self.plan.workers)]
            stage = Stage(
                self.plan,
                procs,
                workers,
                redis_server,
                proxy,
                emulator,
                relay,
                self.db_url,
                self.say,
                self.rng,
                self.accepted,
            )
            self.figures.injected = stage.injected
            self._fault_phase(stage)
            self._settle(stage)
            stage.injected.spoiled_served = relay.spoiled
            self.figures.accepted = len(self.accepted)
            account(
                self.figures,
                emulator.admin().records(custom_ids=True),
                self.db_url,
                redis_server.url,
                self.accepted,
            )
        finally:
            if procs is not None:
                for name in list(procs.procs):
                    procs.kill(name)
            if relay is not None:
                relay.stop()
            emulator.stop()
            proxy.stop()
            redis_server.stop()
        self.figures.redis_kills = redis_server.kills
        self.figures.pg_outages = proxy.outages
        self.figures.seconds = time.monotonic() - started
        return self.figures

    # -- the fault phase ---------------------------------------------------

    def _fault_phase(self, stage: Stage) -> None:
        span = self.plan.fault_seconds
        events = chaos_faults.schedule(stage)
        burst = self.plan.lost_creates * self.plan.max_batch_requests
        chunks = max(1, min(60, (self.plan.requests - burst) // 50))
        chunk_size = max(1, -(-(self.plan.requests - burst) // chunks))
        with self._producer(stage.redis_server.url) as producer:
            # A backlog of full batches, all of one size, whose creates are all lost.
            chaos_faults.lost_creates(stage)
            while self._next_item < burst:
                self._enqueue_chunk(producer, burst)
            for name in stage.workers:
                stage.procs.worker(name, concurrency=self.plan.concurrency)
            stage.procs.beat()
            # The fault clock starts once the service runs: booting Celery takes
            # 10-20 s on a busy machine, and faults before it would hit nothing.
            self._wait_ready(stage)
            start = time.monotonic()
            while True:
                now = time.monotonic() - start
                chaos_faults.supervise(stage)
                while events and events[0][0] <= now:
                    _, name, step = events.pop(0)
                    again = step()
                    if again is not None:
                        events.append((now + again, name, step))
                        events.sort(key=lambda e: e[0])
                due = burst + min(chunks, int(now / (0.7 * span) * chunks) + 1) * chunk_size
                if self._next_item < min(due, self.plan.requests):
                    self._enqueue_chunk(producer, chunk_size)
                if now >= span and not events and self._next_item >= self.plan.requests:
                    break
                if now > span + 120:
                    waiting = [name for _, name, _ in events]
                    raise AssertionError(
                        f"chaos: fault phase overran by 120 s; still waiting on {waiting}, "
                        f"{self._next_item} of {self.plan.requests} requests enqueued"
                    )
                time.sleep(0.05)
        for thread in stage.threads:
            thread.join(timeout=60)
        stage.emulator.admin().set_faults(QUIET_FAULTS)
        stage.relay.fault = StreamFault()
        chaos_faults.supervise(stage)

    def _wait_ready(self, stage: Stage) -> None:
        def ready() -> bool:
            return all(" ready." in stage.procs.log(name) for name in stage.workers)

        wait_for(ready, 120, "the workers to be ready")

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
        try:
            handles = producer.enqueue_many(items)
        except REFUSED:
            # Not accepted (enqueue_many is all or nothing): the application would
            # retry, and so does the loop, after the faults due meanwhile.
            self.figures.refused_enqueues += 1
            time.sleep(0.2)
            return
        self.accepted.update(h.id for h in handles)
        self.figures.accepted = len(self.accepted)
        self._next_item = last

    # -- settling ----------------------------------------------------------

    def _settle(self, stage: Stage) -> None:
        """Waits (bounded) until every request is final. Measures, from the end of
        the faults, the longest stall (no request became final while some were
        open) and the time from the drain (intake stream empty, nothing queued
        for a batch) to the last request final."""
        engine = make_engine(self.db_url)
        client = stage.redis_client()
        f = self.figures
        try:
            deadline = time.monotonic() + self.plan.settle_seconds
            drained: float | None = None
            last_progress = last_note = time.monotonic()
            before: int | None = None
            while time.monotonic() < deadline:
                now = time.monotonic()
                chaos_faults.supervise(stage)
                open_requests, queued = self._open_requests(engine)
                if before is None or open_requests < before:
                    last_progress = now
                before = open_requests
                f.longest_stall_seconds = max(f.longest_stall_seconds, now - last_progress)
                if drained is None and not queued and _intake_depth(client) == 0:
                    drained = now
                    self.say("chaos: backlog drained (faults over, intake and queue empty)")
                if not open_requests and drained is not None:
                    f.recovery_seconds = now - drained
                    return
                if now - last_note > 10:
                    self.say(f"chaos: settling: {open_requests} requests not final or not in SQL")
                    last_note = now
                time.sleep(0.5)
            f.longest_stall_seconds = max(f.longest_stall_seconds, deadline - last_progress)
            self.say("chaos: settling timed out; counting what is there")
        finally:
            client.close()
            engine.dispose()

    def _open_requests(self, engine: Engine) -> tuple[int, int]:
        """Requests not final (or not yet in SQL), and requests queued for a batch."""
        terminal = sql_list(s.value for s in TERMINAL_REQUEST_STATES)
        with engine.connect() as conn:
            final = conn.execute(
                text(f"SELECT count(*) FROM requests WHERE state IN {terminal}")
            ).scalar_one()
            not_final = conn.execute(
                text(f"SELECT count(*) FROM requests WHERE state NOT IN {terminal}")
            ).scalar_one()
            queued = conn.execute(
                text("SELECT count(*) FROM requests WHERE state = 'queued'")
            ).scalar_one()
        return max(0, len(self.accepted) - int(final)) + int(not_final), int(queued)


def _intake_depth(client: redis.Redis) -> int:
    try:
        depth: Any = client.xlen(RedisKeys().intake_stream)
        return int(depth)
    except redis.RedisError:
        return -1
