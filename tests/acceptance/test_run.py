"""`batchline run`: starts everything on embedded defaults and stops it all on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.processes import wait_for

pytestmark = pytest.mark.acceptance


def _children_alive(pid: int) -> list[str]:
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run__stops_worker_redis_and_emulator_on_a_signal(tmp_path: Path, sig: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "batchline"), "run"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "batchline is running" in log.read_text(), 60, "the service to start")
        children = _children_alive(proc.pid)
        assert any("redis-server" in c for c in children)
        assert any("celery" in c for c in children)
        time.sleep(1)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped" in log.read_text() and "Traceback" not in log.read_text()
    for line in children:
        wait_for(_exited(int(line.split()[0])), 10, f"child {line} to exit")


def _exited(pid: int) -> Callable[[], bool]:
    return lambda: not Path(f"/proc/{pid}").exists()
