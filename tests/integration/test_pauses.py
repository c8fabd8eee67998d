"""A pause says why and how it ends; a refused key's pause lifts itself once the
API accepts the current key; a billing pause waits for `batchline resume`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from click.testing import CliRunner

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.adapters.sql import controls as controls_sql
from batchline.cli import cli
from batchline.emulator import EmulatorServer
from batchline.producer import Producer
from batchline.services.pauses import clear_key_pause
from harness.emulated import Emulated, run_once

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}


def _status(pipeline: object, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    settings = pipeline.settings  # type: ignore[attr-defined]
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", settings.redis_url)
    result = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    return dict(orjson.loads(result.output))


def test_pause__refused_key_says_so_and_lifts_once_the_current_key_is_accepted(
    on_emulator: Emulated,
    emulator_factory: Callable[..., EmulatorServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline, _, _ = on_emulator
    strict = emulator_factory(api_key="the-right-key", processing_seconds=0.0)
    wrong = AnthropicBatchApi("sk-ant-wrong", strict.base_url, create_timeout=5, max_retries=0)
    right = AnthropicBatchApi("the-right-key", strict.base_url, create_timeout=5, max_retries=0)
    try:
        pipeline.api = wrong
        with Producer(pipeline.settings) as producer:
            producer.enqueue(PARAMS)
        run_once(pipeline)

        paused = _status(pipeline, monkeypatch)["paused"]
        assert isinstance(paused, dict) and paused["kind"] == "key"
        assert "HTTP 401" in paused["reason"] and "resumes by itself" in paused["ends"]

        assert clear_key_pause(pipeline) is not None  # still the wrong key: still paused
        pipeline.api = right  # a restarted worker with the corrected key
        assert clear_key_pause(pipeline) is None
        run_once(pipeline)
        assert _status(pipeline, monkeypatch)["paused"] is None
        assert _status(pipeline, monkeypatch)["requests"] == {"in_batch": 1}
    finally:
        wrong.close()
        right.close()


def test_pause__billing_waits_for_resume(
    on_emulator: Emulated, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, _, _ = on_emulator
    reason = "batch 7: billing_error: your credit balance is too low"
    with pipeline.sessions.begin() as session:
        controls_sql.pause_submission(session, reason, datetime.now(UTC))

    assert clear_key_pause(pipeline) == reason  # the API cannot tell billing is fixed
    paused = _status(pipeline, monkeypatch)["paused"]
    assert isinstance(paused, dict) and paused["kind"] == "billing"
    assert "batchline resume" in paused["ends"]
    doctor = CliRunner().invoke(cli, ["doctor"]).output
    assert "submission is paused" in doctor and "batchline resume" in doctor
