"""An idle service sends (almost) nothing to Flower: beat skips the intake and
sweep ticks while there is no work, and reconciles at most once a minute;
work makes the ticks go again."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchline.emulator import EmulatorServer
from batchline.producer import Producer
from batchline.settings import Settings
from harness.processes import ServiceProcesses, service_env, wait_for
from harness.redis_server import PrivateRedis

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

PARAMS = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hello"}],
}
SENT = re.compile(r"Sending due task \w+ \((batchline\.\w+)\)")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


def _sent(procs: ServiceProcesses) -> list[str]:
    return SENT.findall(procs.log("beat"))


def test_beat__idle_sends_at_most_a_reconcile_then_work_flows(
    pg_db: str,
    private_redis: str,
    emulator_factory: Callable[..., EmulatorServer],
    tmp_path: Path,
) -> None:
    emulator = emulator_factory(processing_seconds=1.0)
    procs = ServiceProcesses(service_env(pg_db, private_redis, emulator.base_url), tmp_path)
    procs.worker()
    procs.beat()
    try:
        wait_for(lambda: "beat took the lock" in procs.log("beat"), 60, "beat to start")
        # 8 s at the test's intervals (intake 0.5 s, sweep 1 s, reconcile 2 s) would
        # be ~28 sends without the check.
        time.sleep(8)
        idle = _sent(procs)
        assert set(idle) <= {"batchline.reconcile"} and len(idle) <= 1, idle

        with Producer(Settings(database_url=pg_db, redis_url=private_redis)) as producer:
            handle = producer.enqueue(PARAMS)
            assert handle.result(timeout=90).type == "succeeded"
        busy = _sent(procs)
        assert "batchline.intake" in busy and "batchline.sweep" in busy
    finally:
        procs.stop_all()
