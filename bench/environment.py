"""What a benchmark runs against: a scratch PostgreSQL database or SQLite file,
a scratch Redis database, and the emulator in its own process.

Each case gets empty tables and an empty Redis database, so no case measures
what an earlier one left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx2
import redis
from sqlalchemy import create_engine, make_url, text

from batchline.database import make_engine, upgrade
from batchline.local import free_port
from batchline.models import metadata

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
EMULATOR_KEY = "bench-key"
# Backpressure limit for cases that hold a whole full-size run in the intake
# stream at once (100,000 requests are 157 MB): above the default 100 MB, which
# would refuse the one enqueue_many call the issue measures.
WHOLE_RUN_QUEUE_BYTES = 400_000_000


class ServiceMissing(RuntimeError):
    """A service the benchmark needs is missing; the message says which."""


@dataclass(frozen=True)
class Backends:
    postgres_url: str
    sqlite_dir: Path
    redis_url: str
    emulator_url: str

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.sqlite_dir / (name + '.sqlite3')}"


@contextmanager
def scratch_postgres(
    admin_url: str = PG_ADMIN_URL, prefix: str = "batchline_bench"
) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise ServiceMissing(f"PostgreSQL at {admin_url} is not usable: {exc}") from None
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fresh_database(url: str) -> str:
    """Empty every table (PostgreSQL), or start a new migrated file (SQLite)."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        upgrade(url)
        return url
    engine = make_engine(url)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    quiesce_database(url)
    return url


def quiesce_database(url: str) -> None:
    """Leave no work of an earlier run for the next to pay: dead rows vacuumed,
    statistics fresh, dirty pages written (PostgreSQL; SQLite needs nothing)."""
    if url.startswith("sqlite"):
        return
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        with suppress(Exception):
            conn.execute(text("CHECKPOINT"))
    engine.dispose()


def fresh_redis(url: str = REDIS_URL) -> redis.Redis:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise ServiceMissing(f"Redis at {url} is not usable: {exc}") from None
    return client


@contextmanager
def emulator_process(processing_seconds: float = 0.0) -> Iterator[str]:
    """The emulator in its own process, so its CPU and memory are not the worker's."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from batchline.cli import main; main()",
            "emulator",
            "--port",
            str(port),
            "--processing-seconds",
            str(processing_seconds),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Generous: on a loaded shared machine the interpreter alone can take 30 s to start.
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx2.get(f"{url}/_emulator/faults", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServiceMissing("the emulator did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def backends(workdir: Path) -> Iterator[Backends]:
    fresh_redis().close()
    with scratch_postgres() as pg, emulator_process() as emulator:
        yield Backends(pg, workdir, REDIS_URL, emulator)
