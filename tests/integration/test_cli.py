"""Each CLI command against real PostgreSQL, Redis and the emulator."""

from __future__ import annotations

import csv
import io
import os
import pty
import select as io_select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from click.testing import CliRunner
from prometheus_client import generate_latest
from sqlalchemy import text

from batchline.cli import cli
from batchline.emulator import EmulatorServer
from batchline.keys import RedisKeys
from batchline.metrics import registry_for
from batchline.services.context import Pipeline
from batchline.settings import Settings
from harness.emulated import ShiftedClock, poll_and_ingest, run_once
from harness.redis_faults import private_redis as private_redis
from harness.redis_server import PrivateRedis

pytestmark = pytest.mark.integration

Emulated = tuple[Pipeline, EmulatorServer, ShiftedClock]


def params(text: str) -> dict[str, object]:
    return {
        "model": "claude-test",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": text}],
    }


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    lines = [{"custom_id": f"q-{i}", "params": params(f"question {i}")} for i in range(3)]
    lines.append({"custom_id": "bad-one", "params": params("[[emulator:errored:api_error]]")})
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_cli__enqueue_file_then_every_view_of_the_results(
    runner: CliRunner, on_emulator: Emulated, jsonl: Path, redis_client: redis.Redis
) -> None:
    pipeline, _, _ = on_emulator
    assert "4 requests, all valid" in invoke(runner, "enqueue", str(jsonl), "--dry-run")
    assert redis_client.exists(RedisKeys().intake_stream) == 0

    assert "enqueued 4 new requests" in invoke(runner, "enqueue", str(jsonl))
    again = invoke(runner, "enqueue", str(jsonl))  # the same file again adds nothing
    assert "enqueued 0 new requests" in again and "4 already known" in again
    assert redis_client.xlen(RedisKeys().intake_stream) == 4
    pipeline.settings = _max_attempts_one(pipeline)
    run_once(pipeline)
    poll_and_ingest(pipeline)

    status = invoke(runner, "status")
    assert "succeeded 3" in status and "failed 1" in status
    listing = invoke(runner, "batches", "list")
    assert "ingested" in listing and "msgbatch_" in listing
    batch_id = _only_batch_id(pipeline)
    assert "count_succeeded" in invoke(runner, "batches", "show", batch_id)

    exported = invoke(runner, "results", "export")
    lines = [orjson.loads(line) for line in exported.splitlines()]
    assert {x["custom_id"]: x["result"]["type"] for x in lines} == {
        "q-0": "succeeded",
        "q-1": "succeeded",
        "q-2": "succeeded",
        "bad-one": "errored",
    }
    table = list(
        csv.DictReader(
            io.StringIO(
                invoke(runner, "results", "export", "--format", "csv", "--state", "succeeded")
            )
        )
    )
    assert len(table) == 3 and all("question" in row["text"] for row in table)

    request_id = next(
        r["request_id"]
        for r in csv.DictReader(
            io.StringIO(invoke(runner, "results", "export", "--format", "csv", "--state", "failed"))
        )
    )
    assert "api_error" in invoke(runner, "requests", "show", request_id)
    assert "1 requests queued again" in invoke(runner, "retry", batch_id)
    assert "queued 1" in invoke(runner, "status")


def test_cli__takes_every_id_a_user_has_and_answers_json(
    runner: CliRunner, on_emulator: Emulated, jsonl: Path
) -> None:
    pipeline, _, _ = on_emulator
    lines = jsonl.read_bytes()
    lines += orjson.dumps(
        {"custom_id": "final-1", "params": params("[[emulator:errored:invalid_request_error]]")}
    )
    result = runner.invoke(cli, ["enqueue", "-"], input=lines)  # standard input
    assert result.exit_code == 0, result.output
    assert "enqueued 5 new requests from <stdin>" in result.output
    pipeline.settings = _max_attempts_one(pipeline)
    run_once(pipeline)
    poll_and_ingest(pipeline)

    batches = orjson.loads(invoke(runner, "batches", "list", "--json"))
    local, remote = str(batches[0]["id"]), batches[0]["remote_id"]
    assert remote.startswith("msgbatch_")
    by_remote = orjson.loads(invoke(runner, "batches", "show", remote, "--json"))
    assert by_remote == orjson.loads(invoke(runner, "batches", "show", local, "--json"))
    assert by_remote["requests"] == {"succeeded": 3, "failed": 2}

    shown = orjson.loads(invoke(runner, "requests", "show", "q-1", "--json"))  # custom_id/key
    assert shown["state"] == "succeeded" and shown["idempotency_key"] == "q-1"
    by_id = orjson.loads(invoke(runner, "requests", "show", shown["id"], "--json"))
    assert by_id["id"] == shown["id"] and by_id["attempts_history"][0]["result_type"] == "succeeded"
    assert orjson.loads(invoke(runner, "status", "--json"))["requests"]["failed"] == 2

    # retry: the api_error (retriable, out of attempts) goes again; the invalid request not.
    out = invoke(runner, "retry", remote)
    assert "1 requests queued again" in out and "skipped 1" in out
    assert "1 requests queued again" in invoke(runner, "retry", remote, "--include-final")

    for args in (
        ["batches", "show", "999"],
        ["batches", "show", "msgbatch_nope"],
        ["requests", "show", "no-such-thing"],
        ["retry", "999"],
        ["batches", "cancel", "msgbatch_nope"],
        ["results", "export", "--batch", "999"],
    ):
        assert "no " in invoke(runner, *args, code=1).splitlines()[-1], args
    for args in (
        ["results", "export", "--state", "bogus"],
        ["batches", "list", "--state", "bogus"],
        ["batches", "list", "--limit", "0"],
        ["purge", "--older-than", "-1"],
    ):
        assert invoke(runner, *args, code=2), args


def test_cli__purge_says_what_it_will_delete_before_asking(
    runner: CliRunner, on_emulator: Emulated
) -> None:
    pipeline, _, _ = on_emulator
    from batchline.producer import Producer

    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([params("a"), params("b")])
    run_once(pipeline)
    poll_and_ingest(pipeline)
    answer = runner.invoke(cli, ["purge", "--older-than", "0"], input="n\n")
    assert "delete 2 final requests finished before" in answer.output
    assert answer.exit_code == 1  # declined: nothing deleted
    assert "succeeded 2" in invoke(runner, "status")


def test_cli__version_and_help_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from batchline.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('anthropic', 'sqlalchemy', 'celery', 'redis', 'pydantic')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    from importlib.metadata import version

    assert version("batchline") in CliRunner().invoke(cli, ["--version"]).output


def test_cli__lazy_command_list_matches_the_commands() -> None:
    from batchline.cli import LAZY_COMMANDS

    for name, (_module, _attr, shown) in LAZY_COMMANDS.items():
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name
        assert shown.rstrip("…") in " ".join((command.help or "").split()), name


def _only_batch_id(pipeline: Pipeline) -> str:
    from sqlalchemy import select

    from batchline.models import Batch

    with pipeline.sessions() as session:
        return str(session.scalars(select(Batch.id)).one())


def _max_attempts_one(pipeline: Pipeline) -> Settings:

    return pipeline.settings.replace(max_attempts=1)


def test_cli__bad_file_names_line_and_problem_and_enqueues_nothing(
    runner: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        orjson.dumps({"custom_id": "a", "params": params("x")})
        + b"\n"
        + b'{"custom_id": "b", "params": {"model": "m"}}\n'
    )
    result = runner.invoke(cli, ["enqueue", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: max_tokens is required" in result.output
    assert "Traceback" not in result.output
    assert redis_client.dbsize() == 0


def test_cli__cancel_and_purge(runner: CliRunner, on_emulator: Emulated) -> None:
    pipeline, emulator, _ = on_emulator
    from batchline.emulator import FaultConfig
    from batchline.producer import Producer

    emulator.set_faults(FaultConfig(processing_seconds=3600))
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([params("a"), params("b")])
    run_once(pipeline)
    assert "cancel requested" in invoke(runner, "batches", "cancel", _only_batch_id(pipeline))
    poll_and_ingest(pipeline)
    emulator.clock.advance(2)
    poll_and_ingest(pipeline)
    assert "canceled 2" in invoke(runner, "status")
    assert "purged 2 requests and 1 batches" in invoke(
        runner, "purge", "--older-than", "0", "--yes"
    )
    assert "requests" in invoke(runner, "status") and "canceled" not in invoke(runner, "status")
    # No foreign key cascades: the purge itself deletes the purged requests' results
    # and bodies (a body is left for each request still there, and only for those).
    with pipeline.sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM results")) == 0
        orphans = (
            "SELECT count(*) FROM request_bodies WHERE request_id NOT IN (SELECT id FROM requests)"
        )
        assert session.scalar(text(orphans)) == 0


def test_cli__doctor_passes_then_catches_eviction_policy(
    runner: CliRunner, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis of its own: the policy is changed, which the shared one's other users would see.
    monkeypatch.setenv("BATCHLINE_REDIS_URL", private_redis.url)
    healthy = invoke(runner, "doctor")
    assert "[ok  ] database reachable and migrated" in healthy
    assert "[ok  ] API answered HTTP 200" in healthy
    assert "[warn] Redis URL has no password" in healthy

    own = redis.Redis.from_url(private_redis.url)
    own.config_set("maxmemory-policy", "allkeys-lru")
    own.close()
    sick = invoke(runner, "doctor", code=1)
    assert "[FAIL] Redis maxmemory-policy is 'allkeys-lru'" in sick
    assert "noeviction" in sick


def test_cli__doctor_catches_a_database_without_migrations(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    out = invoke(runner, "doctor", code=1)
    assert "[FAIL] database at migration None" in out and "batchline db upgrade" in out


def test_cli__doctor_catches_a_wrong_api_key(
    runner: CliRunner, emulator_factory: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = emulator_factory(api_key="the-right-key")  # type: ignore[operator]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", strict.base_url)
    assert "[FAIL] API refused the key (HTTP 401)" in invoke(runner, "doctor", code=1)


def test_cli__settings_errors_are_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHLINE_POLL_INTERVAL_SECONDS", "-5")
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: BATCHLINE_POLL_INTERVAL_SECONDS must be > 0, got -5.0"


def test_metrics__exposes_pipeline_figures(on_emulator: Emulated) -> None:
    pipeline, _, _ = on_emulator
    from batchline.producer import Producer

    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([params("m1"), params("m2")])
    run_once(pipeline)
    poll_and_ingest(pipeline)
    text = generate_latest(registry_for(pipeline.settings)).decode()
    assert 'batchline_requests{state="succeeded"} 2.0' in text
    assert 'batchline_batches{state="ingested"} 1.0' in text
    assert 'batchline_results_total{outcome="succeeded"} 2.0' in text
    assert 'batchline_stage_seconds_avg{stage="submit"}' in text
    assert "batchline_intake_queue_depth 0.0" in text


@pytest.fixture
def status_env(runner: CliRunner) -> Iterator[dict[str, str]]:
    yield dict(os.environ)


def test_cli__status_watch_refreshes_in_a_terminal(status_env: dict[str, str]) -> None:
    """`status --watch` drawn in a real pseudo-terminal, refreshing, then exiting."""
    batchline = str(Path(sys.executable).parent / "batchline")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [batchline, "status", "--watch", "--interval", "0.3", "--count", "3"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=status_env,
        close_fds=True,
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = io_select.select([leader], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(leader, 65536)
                except OSError:
                    break
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = screen.decode(errors="replace")
    assert "batchline status" in text and "intake queue" in text
    assert "\x1b[" in text  # drawn with terminal control sequences, not plain lines


def test_cli__enqueue_lines_with_betas_carry_them_to_the_store(
    runner: CliRunner, on_emulator: Emulated, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from batchline.domain.validation import known_params
    from batchline.models import Request

    pipeline, _, _ = on_emulator
    beta_only = sorted(known_params(beta=True) - known_params())[0]
    beta_params = {**params("beta"), beta_only: None}
    path = tmp_path / "betas.jsonl"
    path.write_bytes(orjson.dumps({"custom_id": "beta", "params": beta_params}) + b"\n")
    refused = runner.invoke(cli, ["enqueue", str(path)])
    assert refused.exit_code == 1 and "beta parameters need betas=" in refused.output

    lines = [
        {"custom_id": "plain", "params": params("plain")},
        {"custom_id": "beta", "params": beta_params, "betas": ["z-1", "a-1"]},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    assert "2 requests, all valid" in invoke(runner, "enqueue", str(path), "--dry-run")
    assert "enqueued 2 new requests" in invoke(runner, "enqueue", str(path))
    run_once(pipeline)
    with pipeline.sessions() as session:
        stored = dict(session.execute(select(Request.idempotency_key, Request.betas)).all())
    assert stored == {"plain": None, "beta": "a-1,z-1"}
