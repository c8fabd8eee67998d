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
    for custom_id in [*cookbook.example_1(), *cookbook.example_2()]:
        assert f"Result for {custom_id}:\nStatus: succeeded\nContent: " in done.stdout
    assert (tmp_path / ".batchline" / "batchline.sqlite3").exists()
