"""Per-process resources: engine, Redis client, API client, built on first use.

Nothing here is created at import time, and everything is dropped in a forked
child (the prefork pool), because sockets and pooled connections must never
be shared across a fork.
"""

from __future__ import annotations

import gc
import os
import threading

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.messages_api import AnthropicSyncMessages
from batchline.adapters.notify import RedisNotifier
from batchline.adapters.redis_health import make_client
from batchline.database import make_engine, make_session_factory
from batchline.keys import RedisKeys
from batchline.services.context import Pipeline
from batchline.settings import Settings

_lock = threading.Lock()
_pipeline: Pipeline | None = None
_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def build_pipeline(config: Settings) -> Pipeline:
    engine = make_engine(config.database_url)
    client = make_client(config)
    keys = RedisKeys(config.stream_key_prefix)
    api = AnthropicBatchApi(
        api_key=config.api_key,
        base_url=config.base_url,
        create_timeout=config.create_timeout_seconds,
    )
    return Pipeline(
        settings=config,
        engine=engine,
        sessions=make_session_factory(engine),
        api=api,
        intake=RedisIntakeStream(client, keys),
        notifier=RedisNotifier(client, keys),
        messages=AnthropicSyncMessages(
            config.api_key, config.base_url, config.sync_timeout_seconds
        ),
    )


def pipeline() -> Pipeline:
    global _pipeline
    with _lock:
        if _pipeline is None:
            _pipeline = build_pipeline(settings())
        return _pipeline


def reset() -> None:
    """Forget this process's resources (when settings change)."""
    global _pipeline, _settings
    _pipeline = None
    _settings = None


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    if _pipeline is not None:
        # close=False: the parent still owns those sockets; closing them here
        # would send a terminate message down the parent's connections.
        _pipeline.engine.dispose(close=False)
    reset()


def freeze_long_lived_objects() -> None:
    """Take every object alive now (modules, classes, the SDK's models) out of the
    garbage collector's full passes.

    Ingesting a chunk makes tens of thousands of short-lived containers, which
    trigger full collections; each would otherwise walk the hundreds of
    thousands of objects the imports made. On the 2-core benchmark machine this
    halves the time to parse a results stream (bench/README.md).
    """
    gc.collect()
    gc.freeze()


def consumer_name() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"


os.register_at_fork(after_in_child=_after_fork_in_child)
