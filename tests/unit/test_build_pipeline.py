"""`runtime.build_pipeline`: what a worker gets, and what a test or tool swaps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.memory_api import MemoryBatchApi
from batchline.adapters.notify import NullNotifier, RedisNotifier
from batchline.runtime import build_pipeline
from batchline.services.context import utcnow
from batchline.settings import Settings

# Nothing listens on the discard port: building must not connect to Redis.
NO_REDIS = "redis://127.0.0.1:9/0"


def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'b.sqlite3'}", redis_url=NO_REDIS)


def test_build_pipeline__defaults_are_the_workers_ports(tmp_path: Path) -> None:
    pipeline = build_pipeline(_settings(tmp_path))
    try:
        assert isinstance(pipeline.api, AnthropicBatchApi)
        assert isinstance(pipeline.intake, RedisIntakeStream)
        assert isinstance(pipeline.notifier, RedisNotifier)
        assert pipeline.clock is utcnow
    finally:
        pipeline.engine.dispose()


def test_build_pipeline__overrides_replace_only_what_they_name(tmp_path: Path) -> None:
    api, notifier = MemoryBatchApi(), NullNotifier()
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    pipeline = build_pipeline(_settings(tmp_path), api=api, notifier=notifier, clock=lambda: moment)
    try:
        assert pipeline.api is api and pipeline.notifier is notifier
        assert pipeline.clock() == moment
        assert isinstance(pipeline.intake, RedisIntakeStream)
        assert str(pipeline.engine.url).endswith("b.sqlite3")
    finally:
        pipeline.engine.dispose()
