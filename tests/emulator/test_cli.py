"""The `emulator` command, run as `python -m batchline.emulator`."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import pytest

from batchline.emulator import EmulatorAdmin, EmulatorServer

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "batchline.emulator", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process, lines), daemon=True).start()
    deadline = time.monotonic() + 15
    with contextlib.suppress(queue.Empty):
        while line := lines.get(timeout=max(0.0, deadline - time.monotonic())):
            found = re.search(r"ANTHROPIC_BASE_URL=(\S+)", line)
            if found:
                return process, found.group(1)
    process.kill()
    raise AssertionError(f"no base URL printed; stderr: {process.communicate()[1]}")


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
        if "ANTHROPIC_BASE_URL" in line:
            return  # communicate() reads the rest
    lines.put("")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli__serves_the_sdk_then_stops_cleanly_on_a_signal(signum: signal.Signals) -> None:
    process, base_url = _start("--processing-seconds", "0", "--api-key", "cli-secret-key")
    try:
        with anthropic.Anthropic(base_url=base_url, api_key="cli-secret-key") as client:
            batch = client.messages.batches.create(
                requests=[
                    {
                        "custom_id": "a",
                        "params": {
                            "model": "claude-sonnet-4-5",
                            "max_tokens": 10,
                            "messages": [{"role": "user", "content": "hi"}],
                        },
                    }
                ]
            )
        assert EmulatorAdmin(base_url).records().batches[0].id == batch.id
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "cli-secret-key" not in stdout + stderr


def test_cli__faults_json_is_applied() -> None:
    process, base_url = _start("--faults-json", '{"lost_create_responses": 2, "seed": 4}')
    try:
        faults = EmulatorAdmin(base_url).get_faults()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)

    assert (faults.lost_create_responses, faults.seed) == (2, 4)


def test_cli__bad_faults_json_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batchline.emulator", "--faults-json", '{"nope": 1}'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli__a_port_in_use_is_a_clean_error(emulator: EmulatorServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batchline.emulator", "--port", str(emulator.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert "cannot start the emulator" in result.stderr
    assert "Traceback" not in result.stderr
