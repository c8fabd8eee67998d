"""batchline beside an application's own Celery, on one broker: each side's
workers receive only their own tasks (batchline routes every task to its own
queue and its workers consume only that queue)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from batchline.emulator import EmulatorServer
from batchline.producer import Producer
from batchline.settings import Settings
from harness.callback_app import RECEIVED
from harness.callback_app import app as application
from harness.processes import CELERY, ServiceProcesses, service_env, wait_for
from harness.redis_server import PrivateRedis

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

PARAMS = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hello"}],
}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    # A private Redis: on the shared one, another process's Celery (the bench's
    # default database, say) could put tasks on the `celery` queue this test watches.
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def both(
    pg_db: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[ServiceProcesses]:
    emulator = emulator_factory(processing_seconds=1.0)
    procs = ServiceProcesses(
        service_env(pg_db, redis_url, emulator.base_url, CALLBACK_BROKER_URL=redis_url), tmp_path
    )
    procs.worker()
    procs.beat()
    # The application's worker as most are started: its default queue (`celery`), no -Q.
    procs.start(
        "app",
        [
            CELERY[0],
            "-A",
            "harness.callback_app:app",
            "worker",
            "--concurrency=1",
            "-n",
            "app@%h",
            "--without-mingle",
            "--without-gossip",
        ],
    )
    try:
        yield procs
    finally:
        procs.stop_all()


def test_shared_broker__neither_worker_receives_the_others_tasks(
    both: ServiceProcesses,
    pg_db: str,
    redis_url: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(application.conf, "broker_url", redis_url)
    with Producer(Settings(database_url=pg_db, redis_url=redis_url)) as producer:
        handles = [producer.enqueue(PARAMS) for _ in range(3)]
        for _ in range(3):
            application.send_task("myapp.tasks.handle_result", args=["the-apps-own"])
        for handle in handles:
            assert handle.result(timeout=90).type == "succeeded"
    wait_for(lambda: redis_client.llen(RECEIVED) == 3, 30, "the application's own tasks")

    app_log, batchline_log = both.log("app"), both.log("worker")
    assert "batchline." not in app_log, app_log[-3000:]
    assert "unregistered" not in app_log.lower()
    assert "myapp.tasks" not in batchline_log, batchline_log[-3000:]
    assert "unregistered" not in batchline_log.lower()
    assert "batchline.intake" in batchline_log
