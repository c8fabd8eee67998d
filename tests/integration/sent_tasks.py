"""A stand-in for a Celery task that records what was sent instead of sending it."""

from __future__ import annotations


class SentTasks:
    """Replaces a task (monkeypatched onto batchline.tasks): `delay` records the id."""

    def __init__(self) -> None:
        self.batch_ids: list[int] = []

    def delay(self, batch_id: int) -> None:
        self.batch_ids.append(batch_id)
