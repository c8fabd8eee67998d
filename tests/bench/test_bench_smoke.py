"""The benchmark suite at tiny sizes: every case runs and reports its figures.

Timings are never asserted here (they belong to `python -m bench`); this only
keeps the suite from rotting: each case must run to the end against real
PostgreSQL, Redis, celery processes and the emulator, and write its report.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.report import Figure, at_least, at_most, format_row
from harness.redis_server import PrivateRedis
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.bench

# The headline figure each case must report.
HEADLINES = [
    "enqueue one at a time",
    "enqueue_many 500",
    "HTTP enqueue one at a time",
    "HTTP / enqueue throughput",
    "HTTP / enqueue p99",
    "intake+batch+submit 500 (postgresql)",
    "intake+batch+submit 500 (sqlite)",
    "ingest 500 results (postgresql)",
    "ingest 500 results (sqlite)",
    "end to end 200 (postgresql)",
    "end to end 200 (sqlite)",
    "notebook script 200",
    "end to end 200 (vs notebook 200)",
    "script / service time 200",
    "script peak RSS 200",
    "service peak PSS 200",
    "dashboard overview (40,000 requests)",
    "dashboard request (40,000 requests)",
]


@pytest.fixture
def bench_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server for the bench, which empties its database: no shared
    Redis database to collide on with another test process or another run."""
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_smoke_run__every_case_reports_its_figures(tmp_path: Path, bench_redis: str) -> None:
    report = tmp_path / "bench.json"
    env = {**os.environ, "BENCH_PG_URL": PG_ADMIN_URL, "BENCH_REDIS_URL": bench_redis}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(report.read_text())
    assert doc["meta"]["failed"] == []
    results = {r["name"].strip(): r for r in doc["results"]}
    assert len(results) == len(doc["results"]), "figure names must be unique in the report"
    for name in HEADLINES:
        assert name in results, f"{name} missing from {sorted(results)}"
        value = results[name]["value"]
        assert value is not None and math.isfinite(value) and value > 0, (name, value)
    for row in doc["results"]:
        assert set(row) == {"name", "value", "unit", "target", "met", "note"}
        # Smoke sizes set no targets: a figure at 500 requests says nothing about 100,000.
        assert row["target"] is None and row["met"] is None
    # The printed table carries the same figures.
    assert "enqueue_many 500" in done.stdout


def test_report__a_missed_target_is_marked_not_hidden() -> None:
    slow = Figure("ingest", 10_000.0, "results/s", at_least(50_000))
    fast = Figure("ratio", 1.5, "ratio", at_most(2.0))
    broken = Figure("ratio", math.nan, "ratio", at_most(2.0))
    assert slow.met is False and "MISSED" in format_row(slow)
    assert fast.met is True and "MISSED" not in format_row(fast)
    assert broken.met is False
    assert slow.as_json()["met"] is False and slow.as_json()["target"] == ">= 50000"
    assert broken.as_json()["value"] is None
