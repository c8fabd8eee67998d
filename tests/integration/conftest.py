"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from batchline.emulator import EmulatorServer
from batchline.services.context import Pipeline
from harness.emulated import ShiftedClock

Emulated = tuple[Pipeline, EmulatorServer, ShiftedClock]


@pytest.fixture
def runner(on_emulator: Emulated, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    pipeline, emulator, _ = on_emulator
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", pipeline.settings.database_url)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", pipeline.settings.redis_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-cli-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    return CliRunner()
