"""A second Celery app, as an application would have, that receives batchline's callbacks.

Its one task records each request id it is handed in a Redis list, so a test
can count deliveries. Run: celery -A harness.callback_app:app worker -Q batchline-callbacks
"""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("CALLBACK_BROKER_URL", "redis://127.0.0.1:6379/9")
RECEIVED = "callbacks:received"

app = Celery("callback_app", broker=BROKER)
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


@app.task(name="myapp.tasks.handle_result")  # type: ignore[untyped-decorator]
def handle_result(request_id: str) -> None:
    client = redis.Redis.from_url(BROKER)
    try:
        client.rpush(RECEIVED, request_id)
    finally:
        client.close()
