"""`batchline demo`, the README's first command, as a user runs it: nothing configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchline import cookbook

pytestmark = pytest.mark.acceptance


def test_demo__prints_every_cookbook_result_by_custom_id_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))}
    # Set as in most Anthropic users' shells: the demo must stay offline all the same.
    env["ANTHROPIC_API_KEY"] = "sk-ant-must-not-be-used"
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
    batchline = Path(sys.executable).parent / "batchline"

    done = subprocess.run(
        [str(batchline), "demo", "--timeout", "120"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "using the emulator" in done.stderr
    assert "Redis: redis://127.0.0.1:" in done.stderr and "private redis-server" in done.stderr
    assert "database: sqlite:///" in done.stderr
    for custom_id in [*cookbook.example_1(), *cookbook.example_2()]:
        assert f"Result for {custom_id}:\nStatus: succeeded\nContent: " in done.stdout
    assert (tmp_path / ".batchline" / "batchline.sqlite3").exists()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_run_and_demo__a_configured_redis_that_does_not_answer_is_an_error_naming_it(
    tmp_path: Path, command: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))}
    env["BATCHLINE_REDIS_URL"] = "redis://127.0.0.1:9/0"
    batchline = Path(sys.executable).parent / "batchline"

    done = subprocess.run(
        [str(batchline), command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "BATCHLINE_REDIS_URL" in last and "redis://127.0.0.1:9/0" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".batchline" / "redis").exists()  # no private fallback started


def test_run__a_configured_database_that_does_not_answer_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))}
    env["BATCHLINE_DATABASE_URL"] = "postgresql+psycopg://batchline:pw@127.0.0.1:9/none"
    batchline = Path(sys.executable).parent / "batchline"

    done = subprocess.run(
        [str(batchline), "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "BATCHLINE_DATABASE_URL" in last and "127.0.0.1:9/none" in last
    assert "pw@" not in done.stderr and "Traceback" not in done.stderr
