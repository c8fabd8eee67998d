"""Lost creates, other clients of the same key, skewed clocks: through the running service.

Given a real celery worker (concurrency 4) and beat on PostgreSQL and the
emulator with a create fault (harness/create_faults.py); when requests
are enqueued and submitted through it; then every request ends final, none is
sent twice, none is charged an attempt it did not have, none fails without
being sent, and every remote batch is known to SQL (foreign ones counted).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import text

from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.producer import Producer
from batchline.settings import Settings
from harness.create_faults import (
    CreateAccount,
    account,
    api_clock_behind,
    creates_failed_before,
    creates_made_then_failed,
    foreign_batch,
    minus0000_dates,
    other_deployment_custom_ids,
    plain_custom_ids,
    unnamed_batchline_custom_ids,
)
from harness.processes import BIN, ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.integration]

PARAMS = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
SETTLE_SECONDS = 240


def _service(
    pg_db: str, redis_url: str, emulator: EmulatorServer, tmp_path: Path, batch_size: int
) -> ServiceProcesses:
    env = service_env(
        pg_db,
        redis_url,
        emulator.base_url,
        BATCHLINE_MAX_BATCH_REQUESTS=str(batch_size),
        BATCHLINE_CREATE_TIMEOUT_SECONDS="3",
        BATCHLINE_CLOCK_SKEW_SECONDS="2",
        BATCHLINE_RECONCILE_INTERVAL_SECONDS="1",
    )
    return ServiceProcesses(env, tmp_path)


def _enqueue(pg_db: str, redis_url: str, n: int) -> None:
    with Producer(Settings(database_url=pg_db, redis_url=redis_url)) as producer:
        producer.enqueue_many([PARAMS] * n)


def _scalar(db: str, sql: str) -> int:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def _all_settled(db: str, n: int) -> Callable[[], bool]:
    def done() -> bool:
        final = _scalar(
            db,
            "SELECT count(*) FROM requests"
            " WHERE state IN ('succeeded', 'failed', 'canceled', 'expired')",
        )
        open_batches = _scalar(
            db,
            "SELECT count(*) FROM batches"
            " WHERE state IN ('prepared', 'submitting', 'unknown', 'submitted', 'ended')",
        )
        return final == n and open_batches == 0

    return done


def _run(
    procs: ServiceProcesses,
    pg_db: str,
    emulator: EmulatorServer,
    n: int,
    fault: AbstractContextManager[None],
    during: Callable[[], None] | None = None,
) -> CreateAccount:
    with fault:
        procs.worker(concurrency=4)
        procs.beat()
        try:
            if during is not None:
                during()
            wait_for(_all_settled(pg_db, n), SETTLE_SECONDS, "every request final")
        finally:
            procs.stop_all()
    return account(emulator, pg_db)


def _assert_clean(figures: CreateAccount, n: int) -> None:
    assert figures.problems() == []
    assert figures.not_final == 0
    assert figures.states == {"succeeded": n}


@pytest.fixture
def emulator(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    return emulator_factory(processing_seconds=1.0)


@pytest.mark.timeout(SETTLE_SECONDS + 120)
def test_create_safety__twenty_lost_answers_at_concurrency_four_pay_once(
    pg_db: str, redis_url: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    batches, size = 20, 25
    _enqueue(pg_db, redis_url, batches * size)
    procs = _service(pg_db, redis_url, emulator, tmp_path, size)

    fault = creates_made_then_failed(emulator, batches, status=500)
    figures = _run(procs, pg_db, emulator, batches * size, fault)

    _assert_clean(figures, batches * size)
    assert figures.remote_batches == batches


@pytest.mark.timeout(SETTLE_SECONDS + 120)
def test_create_safety__lost_before_and_lost_after_of_one_size_fail_nothing_unsent(
    pg_db: str, redis_url: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    size = 10
    _enqueue(pg_db, redis_url, 2 * size)
    procs = _service(pg_db, redis_url, emulator, tmp_path, size)

    with creates_failed_before(emulator, 1):
        figures = _run(
            procs,
            pg_db,
            emulator,
            2 * size,
            creates_made_then_failed(emulator, 1, status=500),
        )

    _assert_clean(figures, 2 * size)
    # The lost-after batch, and the lost-before intent's second try.
    assert figures.remote_batches == 2


@pytest.mark.parametrize(
    "custom_ids",
    [plain_custom_ids, other_deployment_custom_ids, unnamed_batchline_custom_ids],
    ids=["plain-script", "other-deployment", "unnamed-batchline"],
)
@pytest.mark.timeout(SETTLE_SECONDS + 120)
def test_create_safety__a_foreign_batch_of_the_same_size_is_not_adopted(
    pg_db: str,
    redis_url: str,
    emulator: EmulatorServer,
    tmp_path: Path,
    custom_ids: Callable[[int], list[str]],
) -> None:
    size = 10
    _enqueue(pg_db, redis_url, size)
    procs = _service(pg_db, redis_url, emulator, tmp_path, size)
    made: list[str] = []

    def another_client() -> None:
        # Inside the window: after the intent's create, whose answer was a 500.
        wait_for(
            lambda: _scalar(pg_db, "SELECT count(*) FROM batches WHERE state = 'unknown'") == 1,
            60,
            "the create outcome to be unknown",
        )
        made.append(foreign_batch(emulator, custom_ids(size)))

    figures = _run(procs, pg_db, emulator, size, creates_failed_before(emulator, 1), another_client)

    _assert_clean(figures, size)
    assert figures.foreign_batches == made
    assert figures.remote_batches == 2


@pytest.mark.timeout(SETTLE_SECONDS + 120)
def test_create_safety__worker_clock_ten_minutes_ahead_still_finds_the_lost_batch(
    pg_db: str,
    redis_url: str,
    emulator_factory: Callable[..., EmulatorServer],
    tmp_path: Path,
) -> None:
    emulator = api_clock_behind(emulator_factory, 600, processing_seconds=1.0)
    size = 10
    _enqueue(pg_db, redis_url, size)
    procs = _service(pg_db, redis_url, emulator, tmp_path, size)

    figures = _run(procs, pg_db, emulator, size, creates_made_then_failed(emulator, 1, status=None))

    _assert_clean(figures, size)
    assert figures.remote_batches == 1


@pytest.fixture
def doctor_env(pg_db: str, redis_url: str, emulator: EmulatorServer) -> Iterator[dict[str, str]]:
    yield service_env(pg_db, redis_url, emulator.base_url)


def test_create_safety__doctor_reads_a_minus0000_date_header(
    doctor_env: dict[str, str], emulator: EmulatorServer
) -> None:
    with minus0000_dates(emulator):
        done = subprocess.run(
            [str(BIN / "batchline"), "doctor"],
            env=doctor_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert "Traceback" not in done.stderr, done.stderr
    assert "clock within" in done.stdout, done.stdout


def test_create_safety__fixtures_compose(emulator: EmulatorServer) -> None:
    """The fault pieces undo themselves, so the chaos run can stack them."""
    with creates_made_then_failed(emulator, 2), creates_failed_before(emulator, 1):
        live = emulator.admin().get_faults()
        assert live.lost_create_responses == 2 and live.scripted_errors == {"create": [500]}
    live = emulator.admin().get_faults()
    assert live.lost_create_responses == 0 and live.scripted_errors == {}
