"""Deadlines at the CLI: file lines carry them to the store, and `status`, the
metrics and `doctor` show requests whose deadline is at risk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from sqlalchemy import select

from batchline.cli import cli
from batchline.emulator import EmulatorServer
from batchline.metrics import registry_for
from batchline.models import Request
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from harness.emulated import ShiftedClock

pytestmark = pytest.mark.integration

Emulated = tuple[Pipeline, EmulatorServer, ShiftedClock]


def params(text: str) -> dict[str, object]:
    return {
        "model": "claude-test",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": text}],
    }


def write(path: Path, *lines: dict[str, object]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def test_cli__deadlines_in_file_lines_reach_the_store_and_status_shows_them_at_risk(
    runner: CliRunner, on_emulator: Emulated, tmp_path: Path
) -> None:
    pipeline, _, _ = on_emulator
    bad = write(
        tmp_path / "bad.jsonl", {"custom_id": "x", "params": params("x"), "deadline": "soon"}
    )
    refused = runner.invoke(cli, ["enqueue", str(bad)])
    assert refused.exit_code == 1 and "deadline" in refused.output

    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    path = write(
        tmp_path / "deadlines.jsonl",
        {"custom_id": "soon", "params": params("soon"), "deadline": 10},
        {"custom_id": "later", "params": params("later"), "deadline": later.isoformat()},
        {"custom_id": "none", "params": params("none")},
    )
    result = runner.invoke(cli, ["enqueue", str(path)], catch_exceptions=False)
    assert "enqueued 3 new requests" in result.output, result.output
    run_intake(pipeline, "t")
    with pipeline.sessions() as session:
        stored = dict(session.execute(select(Request.idempotency_key, Request.deadline_at)).all())
    assert stored["later"] == later and stored["none"] is None
    assert stored["soon"] is not None and stored["soon"] < later

    # 10 s from enqueue is within BATCHLINE_SYNC_LATENCY_SECONDS (30): at risk.
    status = json.loads(runner.invoke(cli, ["status", "--json"], catch_exceptions=False).output)
    assert status["deadlines"]["at_risk"] == 1
    assert status["deadlines"]["fallbacks"] == {"pending": 0, "calling": 0, "done": 0, "failed": 0}
    assert "deadlines" in runner.invoke(cli, ["status"], catch_exceptions=False).output
    metrics = generate_latest(registry_for(pipeline.settings)).decode()
    assert "batchline_deadlines_at_risk 1.0" in metrics
    assert 'batchline_fallbacks{state="done"} 0.0' in metrics
    assert "batchline_fallback_cost_usd_total 0.0" in metrics
    assert "1 requests are within" in runner.invoke(cli, ["doctor"]).output
