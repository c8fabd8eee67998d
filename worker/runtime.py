"""Per-process resources: engine, Redis client, API client, built on first use.

Nothing here is created at import time, and everything is dropped in a forked
child (the prefork pool), because sockets and pooled connections must never
be shared across a fork.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

import redis

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.adapters.batch_api import BatchApi
from batchline.adapters.intake import IntakeStream, RedisIntakeStream
from batchline.adapters.messages_api import AnthropicSyncMessages, SyncMessages
from batchline.adapters.notify import RedisNotifier
from batchline.adapters.redis_health import make_client
from batchline.database import make_engine, make_session_factory
from batchline.keys import RedisKeys
from batchline.services.context import Notifier, Pipeline, utcnow
from batchline.settings import Settings

_lock = threading.Lock()
_pipeline: Pipeline | None = None
_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def build_pipeline(
    config: Settings,
    *,
    api: BatchApi | None = None,
    redis_client: redis.Redis | None = None,
    intake: IntakeStream | None = None,
    notifier: Notifier | None = None,
    messages: SyncMessages | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Pipeline:
    """The pipeline a worker runs on. A test or a tool swaps any port (the Batch API,
    the synchronous Messages API, the Redis client under the intake stream and
    notifier, either of those) or the clock, and gets the rest as a worker would."""
    engine = make_engine(config.database_url)
    if intake is None or notifier is None:
        # Made lazily by redis-py: no connection until the first command.
        client = make_client(config) if redis_client is None else redis_client
        keys = RedisKeys(config.stream_key_prefix)
        if intake is None:
            intake = RedisIntakeStream(client, keys)
        if notifier is None:
            notifier = RedisNotifier(client, keys)
    return Pipeline(
        settings=config,
        engine=engine,
        sessions=make_session_factory(engine),
        api=_anthropic_api(config) if api is None else api,
        intake=intake,
        notifier=notifier,
        messages=_sync_messages(config) if messages is None else messages,
        clock=clock,
    )


def _anthropic_api(config: Settings) -> AnthropicBatchApi:
    return AnthropicBatchApi(
        api_key=config.api_key,
        base_url=config.base_url,
        create_timeout=config.create_timeout_seconds,
    )


def _sync_messages(config: Settings) -> AnthropicSyncMessages:
    return AnthropicSyncMessages(config.api_key, config.base_url, config.sync_timeout_seconds)


def pipeline() -> Pipeline:
    global _pipeline
    with _lock:
        if _pipeline is None:
            _pipeline = build_pipeline(settings())
        return _pipeline


# Imported lazily by the SDK's HTTP client on its first use: in each pool child
# on its first task, unless the worker's parent imports them before it forks.
PRELOADED_MODULES = ("httpcore2",)


def preload() -> None:
    """In the worker's parent, before it forks its pool: import what building a
    pipeline would otherwise import in every child. The children then share
    these pages, and their first task does not wait for the imports."""
    for name in PRELOADED_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def warm() -> None:
    """Build this process's pipeline now (in a pool child, after the fork), so the
    first task does not pay for it. Nothing connects yet; should building fail,
    the first task builds it again and reports why."""
    try:
        pipeline()
    except Exception as exc:
        logging.getLogger("batchline.runtime").warning(
            "could not build the pipeline at start-up: %s: %s", type(exc).__name__, exc
        )


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
