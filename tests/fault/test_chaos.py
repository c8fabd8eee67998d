"""Chaos: nothing accepted is lost, nothing is paid twice unknowingly.

Given >= 2 real celery workers and a beat on PostgreSQL, a private AOF Redis
and the emulator failing on every endpoint; when requests are enqueued while
workers are SIGKILLed (>= 10 times), Redis is SIGKILLed and restarted from
its AOF, PostgreSQL refuses connections for a few seconds, a results stream is
cut midway, one create's answer is lost and a second beat runs for a while;
then, once the faults stop, every accepted request is in SQL in exactly one
terminal state, none has two non-duplicate successes, every remote batch the
emulator made is known to SQL, and duplicate spend is counted.

CI scale: BATCHLINE_CHAOS_REQUESTS (default 3000) over BATCHLINE_CHAOS_SECONDS
(default 90) of faults. By hand, larger:
    .venv/bin/python -m harness.run_chaos --requests 20000 --minutes 10
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.chaos import ChaosPlan, ChaosRun

pytestmark = [pytest.mark.fault, pytest.mark.integration]

REQUESTS = int(os.environ.get("BATCHLINE_CHAOS_REQUESTS", "3000"))
FAULT_SECONDS = float(os.environ.get("BATCHLINE_CHAOS_SECONDS", "90"))


@pytest.mark.timeout(FAULT_SECONDS + 600)
def test_chaos__every_accepted_request_ends_once_and_every_remote_batch_is_known(
    pg_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = ChaosPlan(requests=REQUESTS, fault_seconds=FAULT_SECONDS)
    figures = ChaosRun(plan, tmp_path, pg_db, say=lambda s: print(s, flush=True)).run()
    with capsys.disabled():
        print("\n" + "\n".join(figures.lines()))

    assert figures.accepted == REQUESTS
    assert figures.worker_kills >= 10
    assert figures.redis_kills == 1
    assert figures.pg_outages == 1
    assert figures.second_beat
    assert figures.lost_create_responses == 1
    assert not figures.lost, "accepted requests missing from SQL"
    assert not figures.not_final, "requests not in a terminal state"
    assert not figures.double_success, "requests with two non-duplicate successes"
    assert not figures.succeeded_without_result
    assert not figures.unknown_remote, "remote batches SQL does not know"
    assert figures.remote_batches == figures.creates
    assert sum(figures.states.values()) == figures.sql_requests
