"""Bad data and hostile results streams, through the running service.

Given real `celery worker` and `celery beat` subprocesses, PostgreSQL (or
SQLite), Redis and the emulator (behind a relay that spoils what it sends);
when a poison entry sits in the intake stream among good ones, a reply holds
U+0000, a results line never seems to end, or a results stream trickles; then
every good neighbour finishes, the bad item is dead-lettered or failed with its
reason, what was stored is byte-exact, memory stays bounded, one download runs
per batch, and intake keeps moving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from click.testing import CliRunner
from prometheus_client import generate_latest
from sqlalchemy import select

from batchline.adapters.intake_counts import dead_letters as dead_letter_count
from batchline.cli import cli
from batchline.database import make_engine, upgrade
from batchline.domain.results import renamed_line
from batchline.emulator import EmulatorServer
from batchline.metrics import registry_for
from batchline.models import Batch, Request, Result
from batchline.producer import Producer
from batchline.settings import Settings
from harness.hostile_api import HostileApi
from harness.poison import (
    PARAMS,
    POISON_ENTRIES,
    HostileResults,
    StreamFault,
    children,
    dead_letters,
    nul_in_reply,
    peak_memory_kib,
    stream_fields,
    write_poison,
)
from harness.processes import ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.acceptance]

FINAL = {"succeeded", "failed", "canceled", "expired"}


def states(database_url: str) -> dict[str, tuple[str, str | None]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Request.id, Request.state, Request.last_error))
            return {i: (s, e) for i, s, e in rows}
    finally:
        engine.dispose()


def all_final(database_url: str, ids: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        found = states(database_url)
        return all(found.get(i, ("pending", None))[0] in FINAL for i in ids)

    return check


def ended_batches(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            states = conn.scalars(select(Batch.state).where(Batch.state == "ended"))
            return len(list(states))
    finally:
        engine.dispose()


@pytest.fixture
def start_service(
    redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[Callable[..., tuple[ServiceProcesses, EmulatorServer]]]:
    """Starts worker and beat against `database_url`, through `relay(emulator_url)`."""
    started: list[ServiceProcesses] = []

    def start(
        database_url: str, relay: Callable[[str], str] | None = None, **env: str
    ) -> tuple[ServiceProcesses, EmulatorServer]:
        emulator = emulator_factory(processing_seconds=0.5)
        base_url = relay(emulator.base_url) if relay else emulator.base_url
        procs = ServiceProcesses(service_env(database_url, redis_url, base_url, **env), tmp_path)
        started.append(procs)
        procs.worker()
        procs.beat()
        return procs, emulator

    try:
        yield start
    finally:
        for procs in started:
            procs.stop_all()


def test_intake__poison_entries_are_dead_lettered_and_their_neighbours_finish(
    start_service: Callable[..., tuple[ServiceProcesses, EmulatorServer]],
    pg_db: str,
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    # Given: good requests, with one poison entry of each kind written between them.
    settings = Settings(database_url=pg_db, redis_url=redis_url)
    with Producer(settings) as producer:
        good = [h.id for h in producer.enqueue_many([PARAMS] * 5)]
        poison = {write_poison(redis_client, kind): kind for kind in POISON_ENTRIES}
        good += [h.id for h in producer.enqueue_many([PARAMS] * 5)]
    bundle = next(e for e, kind in poison.items() if kind == "bundle-one-bad")
    fields = stream_fields(redis_client, bundle)
    bundled = [i for i in fields[b"id"].decode().split(" ") if not i.startswith("not-hex")]

    # When: the service runs.
    procs, _ = start_service(pg_db)
    ids = good + bundled
    try:
        wait_for(all_final(pg_db, ids), 90, "the good requests to finish")
    except AssertionError:
        pytest.fail("good requests wedged; worker log:\n" + procs.log("worker")[-4000:])

    # Then: every good request succeeded, each poison entry is dead-lettered with a reason.
    found = states(pg_db)
    assert {found[i][0] for i in ids} == {"succeeded"}
    assert len(found) == len(ids)  # no poison request reached SQL
    letters = dead_letters(redis_client)
    assert {letter[b"entry"] for letter in letters} == set(poison)
    for letter in letters:
        assert letter[b"reason"], letter
    reasons = {poison[letter[b"entry"]]: letter[b"reason"].decode() for letter in letters}
    assert "not a request id" in reasons["non-hex-id"]
    assert "not a request id" in reasons["bundle-one-bad"]
    assert "t must be a time" in reasons["t-overflows"]
    assert "key must be" in reasons["key-not-a-string"]
    assert "U+0000" in reasons["nul-in-tag"]
    # Counted where an operator looks.
    assert dead_letter_count(settings) == len(POISON_ENTRIES)
    scraped = generate_latest(registry_for(settings)).decode()
    assert f"batchline_intake_dead_letters {float(len(POISON_ENTRIES))}" in scraped
    engine = make_engine(pg_db)
    with engine.connect() as conn:
        batch_states = set(conn.scalars(select(Batch.state)))
    engine.dispose()
    assert batch_states == {"ingested"}


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_results__nul_in_a_reply_is_stored_and_returned_byte_exact(
    start_service: Callable[..., tuple[ServiceProcesses, EmulatorServer]],
    backend: str,
    request: pytest.FixtureRequest,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given: every results download rewrites one reply to hold U+0000.
    if backend == "sqlite":
        database_url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
        upgrade(database_url)
    else:
        database_url = str(request.getfixturevalue("pg_db"))
    sent: list[bytes] = []

    def spoil(body: bytes) -> bytes:
        sent.append(nul_in_reply(body))
        return sent[-1]

    stubs: list[HostileApi] = []

    def relay(upstream: str) -> str:
        stubs.append(HostileApi(upstream).start())
        stubs[0].spoil_results(spoil, times=100)
        return stubs[0].base_url

    settings = Settings(database_url=database_url, redis_url=redis_url)
    try:
        procs, _ = start_service(database_url, relay)
        # When: four requests go through the service.
        with Producer(settings) as producer:
            handles = producer.enqueue_many([PARAMS] * 4)
            ids = [h.id for h in handles]
            try:
                wait_for(all_final(database_url, ids), 90, "the batch to finish")
            except AssertionError:
                pytest.fail("batch wedged; worker log:\n" + procs.log("worker")[-4000:])
            victim = min(handles, key=lambda h: h.id)
            result = victim.result(timeout=10)
    finally:
        for stub in stubs:
            stub.stop()

    # Then: all succeeded; the victim's line is stored and returned as sent, byte for byte.
    assert {s for s, _ in states(database_url).values()} == {"succeeded"}
    line = next(x for x in sent[-1].split(b"\n") if victim.id.encode() in x)
    assert b"\\u0000 after a NUL" in line
    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = conn.scalar(select(Result.line).where(Result.request_id == victim.id))
    engine.dispose()
    assert stored == line
    assert result.type == "succeeded"
    assert "\x00 after a NUL" in result.message.content[0].text  # type: ignore[union-attr]
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", redis_url)
    shown = CliRunner().invoke(cli, ["requests", "show", victim.id, "--raw"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout_bytes == line + b"\n"
    exported = CliRunner().invoke(cli, ["results", "export"])
    assert exported.exit_code == 0, exported.output
    custom_id = orjson.loads(line)["custom_id"]
    assert renamed_line(line, custom_id, victim.id) in exported.stdout_bytes.split(b"\n")


def test_results__an_endless_line_fails_its_request_with_memory_bounded(
    start_service: Callable[..., tuple[ServiceProcesses, EmulatorServer]],
    pg_db: str,
    redis_url: str,
) -> None:
    # Given: the first result line (by custom_id) runs to 256 MiB; the limit is 1 MiB.
    relays: list[HostileResults] = []

    def relay(upstream: str) -> str:
        relays.append(HostileResults(upstream).start())
        relays[0].fault = StreamFault(endless_line_bytes=256 << 20)
        return relays[0].base_url

    try:
        procs, _ = start_service(
            pg_db, relay, BATCHLINE_MAX_RESULT_LINE_BYTES=str(1 << 20), BATCHLINE_INGEST_CHUNK="2"
        )
        wait_for(lambda: len(children(procs.procs["worker"].pid)) >= 2, 30, "the pool")
        pool = children(procs.procs["worker"].pid)
        wait_for(lambda: all(peak_memory_kib(p) > 0 for p in pool), 5, "pool memory")
        before = {p: peak_memory_kib(p) for p in pool}
        # When: four requests go through the service.
        with Producer(Settings(database_url=pg_db, redis_url=redis_url)) as producer:
            ids = [h.id for h in producer.enqueue_many([PARAMS] * 4)]
        try:
            wait_for(all_final(pg_db, ids), 120, "the batch to finish")
        except AssertionError:
            pytest.fail("batch wedged; worker log:\n" + procs.log("worker")[-4000:])
        grown = max(peak_memory_kib(p) - before[p] for p in pool)
        downloads = relays[0].downloads
    finally:
        for one in relays:
            one.stop()

    # Then: that request failed with the reason, the others succeeded, and no
    # worker process held the line (256 MiB) or anything near it.
    found = states(pg_db)
    victim = min(ids)
    assert found[victim][0] == "failed"
    assert "over BATCHLINE_MAX_RESULT_LINE_BYTES" in (found[victim][1] or "")
    assert {found[i][0] for i in ids if i != victim} == {"succeeded"}
    assert downloads >= 1
    assert grown < 64 * 1024, f"a pool process grew by {grown} KiB"


def test_results__a_trickling_stream_hits_its_deadline_alone_and_intake_keeps_moving(
    start_service: Callable[..., tuple[ServiceProcesses, EmulatorServer]],
    pg_db: str,
    redis_url: str,
) -> None:
    # Given: results trickle (about 300 bytes a second); a 2 s lease, a 4 s deadline.
    relays: list[HostileResults] = []

    def relay(upstream: str) -> str:
        relays.append(HostileResults(upstream).start())
        relays[0].fault = StreamFault(trickle_bytes=16, trickle_pause=0.05)
        return relays[0].base_url

    settings = Settings(database_url=pg_db, redis_url=redis_url)
    try:
        procs, _ = start_service(
            pg_db,
            relay,
            BATCHLINE_INGEST_LEASE_SECONDS="2",
            BATCHLINE_INGEST_DEADLINE_SECONDS="4",
        )
        hostile = relays[0]
        with Producer(settings) as producer:
            first = [h.id for h in producer.enqueue_many([PARAMS] * 4)]
            wait_for(lambda: hostile.downloads >= 1, 60, "a results download to start")
            # When: more requests are enqueued while the download trickles.
            later = [h.id for h in producer.enqueue_many([PARAMS] * 3)]
            try:
                wait_for(lambda: all(i in states(pg_db) for i in later), 20, "new requests in SQL")
                wait_for(
                    lambda: "BATCHLINE_INGEST_DEADLINE_SECONDS" in procs.log("worker"),
                    30,
                    "the download deadline",
                )
                # Both batches ended, both trickling: the slot budget is tried.
                wait_for(lambda: ended_batches(pg_db) >= 2, 60, "the second batch to end")
                seen = hostile.downloads
                wait_for(lambda: hostile.downloads >= seen + 2, 30, "downloads to be tried again")
            except AssertionError as exc:
                pytest.fail(f"{exc}; worker log:\n" + procs.log("worker")[-4000:])
            # Then: never two downloads of one batch at once, nor more than the budget (1).
            most, most_in_total = hostile.most_at_once(), hostile.max_total
            # And once the stream behaves, everything finishes.
            hostile.fault = StreamFault()
            wait_for(all_final(pg_db, first + later), 90, "every request to finish")
    finally:
        for one in relays:
            one.stop()

    assert most == 1
    assert most_in_total == 1
    assert {s for s, _ in states(pg_db).values()} == {"succeeded"}
