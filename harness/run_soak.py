"""The soak run by hand: sustained enqueueing with worker and beat running.

    .venv/bin/python -m harness.run_soak --minutes 10 --rate 200

Starts the emulator (batches end at once), a `celery worker` and `celery beat`
against a throwaway PostgreSQL database and Redis db 13, enqueues `--rate`
requests a second for `--minutes`, then waits for every result. Every 30 s it
prints throughput and the resident memory (RSS, from /proc) of the worker's
processes; at the end, whether memory stayed flat (last sample within 1.3x of
the first after warm-up). Exits 1 if a request is not final at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.models import Request
from batchline.producer import Producer
from batchline.settings import Settings
from harness.chaos import scratch_database
from harness.processes import ServiceProcesses, service_env

PG_ADMIN_URL = os.environ.get(
    "BATCHLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BATCHLINE_SOAK_REDIS_URL", "redis://127.0.0.1:6379/13")
FINAL = ("succeeded", "failed", "canceled", "expired")


def rss_mib(root_pid: int) -> float:
    """Resident memory of a process and its children (the prefork pool), in MiB."""
    pids = [root_pid]
    children = Path(f"/proc/{root_pid}/task/{root_pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def final_count(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.scalar(select(func.count()).where(Request.state.in_(FINAL))) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="requests enqueued per second")
    parser.add_argument("--settle-minutes", type=float, default=5.0)
    args = parser.parse_args(argv)
    redis.Redis.from_url(REDIS_URL).flushdb()
    with (
        tempfile.TemporaryDirectory(prefix="batchline-soak-") as scratch,
        scratch_database(PG_ADMIN_URL) as db_url,
        EmulatorServer(processing_seconds=0.5) as emulator,
    ):
        env = service_env(
            db_url,
            REDIS_URL,
            emulator.base_url,
            BATCHLINE_MAX_BATCH_REQUESTS="5000",
            BATCHLINE_LOG_FORMAT="text",
        )
        procs = ServiceProcesses(env, Path(scratch))
        worker = procs.worker(concurrency=2)
        procs.beat()
        engine = make_engine(db_url)
        try:
            return _soak(
                args, Settings(database_url=db_url, redis_url=REDIS_URL), worker.pid, engine
            )
        finally:
            procs.stop_all()
            engine.dispose()


def _soak(args: argparse.Namespace, settings: Settings, worker_pid: int, engine: object) -> int:
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Summarise the soak test in a line."}],
    }
    start = time.monotonic()
    end = start + args.minutes * 60
    sent, next_report, samples = 0, start + 30, []
    with Producer(settings) as producer:
        while (now := time.monotonic()) < end:
            due = int((now - start) * args.rate) - sent
            if due > 0:
                producer.enqueue_many([params] * due)
                sent += due
            if now >= next_report:
                done, rss = final_count(engine), rss_mib(worker_pid)
                samples.append(rss)
                print(
                    f"t={now - start:5.0f}s enqueued {sent:7d} ({sent / (now - start):6.1f}/s) "
                    f"final {done:7d} ({done / (now - start):6.1f}/s) worker RSS {rss:7.1f} MiB",
                    flush=True,
                )
                next_report += 30
            time.sleep(0.05)
    deadline = time.monotonic() + args.settle_minutes * 60
    while final_count(engine) < sent and time.monotonic() < deadline:
        time.sleep(1)
    done, elapsed = final_count(engine), time.monotonic() - start
    warm = samples[1:] or samples
    flat = bool(warm) and warm[-1] <= 1.3 * warm[0]
    print(
        f"enqueued {sent}, final {done} in {elapsed:.0f}s ({done / elapsed:.1f}/s); "
        f"worker RSS {warm[0]:.1f} -> {warm[-1]:.1f} MiB after warm-up: "
        f"{'flat' if flat else 'GREW'}"
        if warm
        else "no samples"
    )
    return 0 if done == sent else 1


if __name__ == "__main__":
    sys.exit(main())
