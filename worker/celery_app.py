"""The Celery app: `celery -A batchline worker` / `... beat`.

Settings the invariants depend on (DESIGN.md): late acks and prefetch 1, so a
killed worker's task is redelivered; time limits well below the Redis
transport's visibility timeout, so a task still running is never handed to a
second worker; task events on for Flower; no ETA/countdown tasks anywhere.

Every batchline task goes to batchline's own queue (`BATCHLINE_CELERY_QUEUE`,
default `batchline`): the routes send them there and a worker started from this
app consumes only that queue, so an application's own Celery on the same broker
never receives batchline's tasks, nor batchline's workers the application's.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init

from batchline import runtime

VISIBILITY_TIMEOUT = 3600
TASK_TIME_LIMIT = 1800
TASK_SOFT_TIME_LIMIT = 1700


def make_app() -> Celery:
    config = runtime.settings()
    app = Celery("batchline", broker=config.redis_url, include=["batchline.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            # A Redis that hangs fails a call instead of freezing the worker.
            "socket_timeout": config.redis_socket_timeout_seconds,
            "socket_connect_timeout": config.redis_connect_timeout_seconds,
        },
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        task_default_queue=config.celery_queue,
        task_routes=task_routes(config),
        beat_schedule=beat_schedule(config),
        beat_scheduler="batchline.beat:LockedScheduler",
        beat_max_loop_interval=5,
    )
    return app


def task_routes(config: Any) -> dict[str, dict[str, str]]:
    # The glob catches every task named batchline.*; an exact name listed here
    # (e.g. a queue of its own for one task) wins over it.
    return {"batchline.*": {"queue": config.celery_queue}}


def beat_schedule(config: Any) -> dict[str, dict[str, Any]]:
    # Periodic wake-ups only: each task reads what to do from SQL, so a lost or
    # doubled tick is harmless.
    # A tick still queued when the next is due is dropped (`expires`): while the
    # workers are busy, stale ticks would otherwise pile up ahead of real work.
    intervals = {
        "intake": config.intake_interval_seconds,
        "sweep": min(5.0, config.poll_interval_seconds),
        "reconcile": config.reconcile_interval_seconds,
        "deadlines": config.deadline_scan_seconds,
    }
    return {
        name: {
            "task": f"batchline.{name}",
            "schedule": every,
            "options": {"expires": every, "queue": config.celery_queue},
        }
        for name, every in intervals.items()
    }


@setup_logging.connect
def _structured_logs(loglevel: Any = None, **_: Any) -> None:
    # Connected, so Celery leaves logging to batchline: JSON lines with ids as fields.
    import logging

    from batchline import logs

    level = loglevel if isinstance(loglevel, str) else logging.getLevelName(loglevel or 20)
    config = runtime.settings()
    logs.configure(level, config.log_format, secret=config.api_key)


@worker_process_init.connect
def _fresh_resources(**_: Any) -> None:
    runtime.reset()
    # Built here rather than on the first task, and before the freeze, so its
    # objects are frozen too (sockets still open only on first use).
    runtime.warm()
    runtime.freeze_long_lived_objects()


@worker_init.connect
def _check_redis(**_: Any) -> None:
    import logging

    import redis

    from batchline.adapters.redis_health import make_client, redis_problems
    from batchline.relief import drain_if_full

    runtime.preload()
    client = make_client(runtime.settings())
    try:
        for problem in redis_problems(client):
            logging.getLogger("batchline.startup").warning("%s", problem)
    except redis.RedisError as exc:
        logging.getLogger("batchline.startup").warning("could not check Redis: %s", exc)
    finally:
        client.close()
    # Before the consumer starts: Celery's start-up writes to Redis (kombu's
    # restore mutex, queue bindings), which a full Redis refuses.
    drain_if_full(runtime.settings())


app = make_app()
