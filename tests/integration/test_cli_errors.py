"""Every CLI command's expected failures are one line saying what to do, never a
traceback: against a database with no tables, and against a Redis that does
not answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from batchline.cli import cli
from batchline.metrics import registry_for
from batchline.settings import Settings
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.integration

# Long-running commands (servers, the service itself) are covered by their own tests.
SERVING = {"run", "demo", "metrics", "emulator", "serve", "dashboard"}
ARGUMENTS = {
    "batches show": ["1"],
    "batches cancel": ["1"],
    "requests show": ["r-1"],
    "retry": ["1"],
    "purge": ["--older-than", "30", "--yes"],
    "db downgrade": ["base", "--yes"],
    "db upgrade": [],
    "dead-letters requeue": ["1-0"],
}


def every_command(group: click.Group = cli, prefix: str = "") -> Iterator[str]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from every_command(command, f"{path} ")
        elif path not in SERVING:
            yield path


@pytest.fixture
def requests_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    line = {
        "custom_id": "a-1",
        "params": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    }
    path.write_bytes(orjson.dumps(line) + b"\n")
    return path


def _args(command: str, requests_file: Path) -> list[str]:
    if command == "enqueue":
        return [str(requests_file)]
    return ARGUMENTS.get(command, [])


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"batchline_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _assert_one_line_or_success(result: click.testing.Result, command: str) -> None:
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), f"{command}: {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output, f"{command}:\n{result.output}"
    if result.exit_code != 0:
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 or result.output.count("[FAIL]"), f"{command}:\n{result.output}"


@pytest.mark.parametrize("command", list(every_command()))
def test_cli__every_command_on_an_empty_database_says_run_db_upgrade(
    command: str,
    empty_database: str,
    redis_url: str,
    requests_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", empty_database)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", redis_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unused")

    result = CliRunner().invoke(cli, [*command.split(), *_args(command, requests_file)])

    _assert_one_line_or_success(result, command)
    if result.exit_code != 0 and command not in ("enqueue", "db downgrade", "db history"):
        assert "batchline db upgrade" in result.output, f"{command}:\n{result.output}"


@pytest.mark.parametrize("command", list(every_command()))
def test_cli__every_command_with_redis_unreachable_names_it(
    command: str,
    sqlite_db: str,
    requests_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", sqlite_db)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unused")

    result = CliRunner().invoke(cli, [*command.split(), *_args(command, requests_file)])

    _assert_one_line_or_success(result, command)
    if command in ("enqueue", "doctor"):
        assert result.exit_code == 1
        assert "redis://127.0.0.1:9/0" in result.output


def test_metrics__empty_database_scrape_answers_with_the_fix(empty_database: str) -> None:
    body = generate_latest(registry_for(Settings(database_url=empty_database))).decode()
    assert "batchline_database_ready 0.0" in body
    assert "run `batchline db upgrade`" in body
