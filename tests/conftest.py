"""Shared fixtures: real PostgreSQL and Redis on loopback, SQLite files, pipelines.

PostgreSQL: a fresh database per test session on BATCHLINE_TEST_PG_URL (the
machine's `test` server by default), migrated with Alembic, emptied per test.
Redis: database BATCHLINE_TEST_REDIS_DB (default 9) on BATCHLINE_TEST_REDIS_URL,
flushed per test, so tests never touch db 0. Under pytest-xdist each worker takes
its own database: BATCHLINE_TEST_REDIS_DB may list them ("6,7,8"); a single
number N gives worker gwK database N + K. Two workers never share one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from batchline.adapters.memory_api import MemoryBatchApi
from batchline.database import make_engine, upgrade
from batchline.models import metadata
from batchline.runtime import build_pipeline
from batchline.services.context import Pipeline
from batchline.settings import Settings

pytest_plugins = ["tests.emulator_fixtures", "harness.emulated", "tests.state_moves"]

PG_ADMIN_URL = os.environ.get(
    "BATCHLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_BASE_URL = os.environ.get("BATCHLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _redis_db(setting: str, worker: str | None) -> int:
    """This process's Redis database: the one given, or under xdist worker gwK the
    K-th of a list (or N + K for a single N), never db 0 nor past db 15."""
    given = [int(part) for part in setting.split(",") if part.strip()]
    index = int(worker.removeprefix("gw")) if worker and worker.startswith("gw") else 0
    if len(given) > 1:
        if index >= len(given):
            raise RuntimeError(
                f"xdist worker {worker} has no Redis database: BATCHLINE_TEST_REDIS_DB={setting}"
                " lists fewer databases than there are workers"
            )
        db = given[index]
    else:
        db = given[0] + index
    if not 0 < db < 16:
        raise RuntimeError(f"Redis database {db} for worker {worker}: give BATCHLINE_TEST_REDIS_DB")
    return db


REDIS_DB = _redis_db(
    os.environ.get("BATCHLINE_TEST_REDIS_DB", "9"), os.environ.get("PYTEST_XDIST_WORKER")
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"batchline_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_tables(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        # The triggers counted those deletes into the running totals: empty them last.
        for name in ("request_state_counts", "result_totals"):
            conn.execute(metadata.tables[name].delete())
    engine.dispose()


@pytest.fixture
def pg_db(pg_url: str) -> str:
    _empty_tables(pg_url)
    return pg_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (Alembic closes it after)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "batchline.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite database at head: a copy of the session's migrated file, the
    same bytes a migration per test would write, without a second or more each."""
    path = tmp_path / "batchline.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on both backends."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    return str(request.getfixturevalue(name))


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = f"{REDIS_BASE_URL}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_settings(db: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db,
        "redis_url": redis_url,
        "max_batch_requests": 100,
        "max_wait_seconds": 0,
        "poll_interval_seconds": 1,
        "create_timeout_seconds": 30,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def memory_api(clock: Clock) -> MemoryBatchApi:
    return MemoryBatchApi(now=clock)


BuildPipeline = Callable[..., Pipeline]


@pytest.fixture
def build_test_pipeline() -> Iterator[BuildPipeline]:
    """Builds pipelines as a worker does (`runtime.build_pipeline`), with the ports or
    the clock a test swaps as keyword overrides; their engines are disposed after."""
    built: list[Pipeline] = []

    def build(settings: Settings, **overrides: Any) -> Pipeline:
        built.append(build_pipeline(settings, **overrides))
        return built[-1]

    yield build
    for pipeline in built:
        pipeline.engine.dispose()


@pytest.fixture
def pipeline(
    db_url: str,
    redis_client: redis.Redis,
    redis_url: str,
    memory_api: MemoryBatchApi,
    clock: Clock,
    build_test_pipeline: BuildPipeline,
) -> Pipeline:
    """The pipeline over real SQL and Redis, with the in-memory Batch API."""
    settings = make_settings(db_url, redis_url)
    return build_test_pipeline(settings, api=memory_api, redis_client=redis_client, clock=clock)
