"""The ingestion lease: one download per batch, and a budget of downloads at once.

A download holds its batch's lease (`batches.lease_until`) and renews it by
time, every third of its length, whatever the stream's pace; the renewal is
guarded on the exact end this worker set, so a download whose lease was taken
over stops at its next read instead of running beside the new one.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from batchline.adapters.sql import ingest_lease as ingest_lease_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.domain.retry import Failure
from batchline.services.context import Pipeline


class DownloadStopped(Exception):
    """The download ends early: its deadline passed, or another worker took the lease."""

    kind = Failure.DOWNLOAD_LEASE_LOST


class DeadlinePassed(DownloadStopped):
    """The whole download took longer than BATCHLINE_INGEST_DEADLINE_SECONDS."""

    kind = Failure.DOWNLOAD_DEADLINE


class IngestLease:
    """This worker's hold on a batch's ingestion, renewed by time, not by lines."""

    def __init__(self, pipeline: Pipeline, batch_id: int, until: datetime) -> None:
        self._pipeline = pipeline
        self._batch_id = batch_id
        self._length = timedelta(seconds=pipeline.settings.ingest_lease_seconds)
        self.until = until
        self._renewed = time.monotonic()
        # Kept from two threads (the read-ahead reader and the writer): one renews at a time.
        self._keeping = threading.Lock()

    @classmethod
    def take(cls, pipeline: Pipeline, batch_id: int) -> tuple[IngestLease, str] | None:
        settings = pipeline.settings
        now = pipeline.clock()
        until = now + timedelta(seconds=settings.ingest_lease_seconds)
        with pipeline.sessions.begin() as session:
            if not ingest_lease_sql.take_ingest_lease(
                session, batch_id, now, until, settings.ingest_concurrency
            ):
                return None
            batch = rows_sql.get_batch(session, batch_id)
            assert batch is not None and batch.remote_id is not None
            return cls(pipeline, batch_id, until), batch.remote_id

    def keep(self) -> None:
        """Renew once a third of the lease has passed; raise if another worker holds it."""
        with self._keeping:
            if time.monotonic() - self._renewed < self._length.total_seconds() / 3:
                return
            until = self._pipeline.clock() + self._length
            with self._pipeline.sessions.begin() as session:
                held = ingest_lease_sql.extend_ingest_lease(
                    session, self._batch_id, self.until, until
                )
            if not held:
                raise DownloadStopped("another worker took the ingestion lease")
            self.until, self._renewed = until, time.monotonic()

    def back_off(self) -> None:
        """Leave the batch for about half a lease, without holding a download slot."""
        until = self._pipeline.clock() + self._length / 2
        with self._pipeline.sessions.begin() as session:
            ingest_lease_sql.extend_ingest_lease(session, self._batch_id, self.until, until)

    def release(self) -> None:
        with self._pipeline.sessions.begin() as session:
            ingest_lease_sql.release_ingest_lease(session, self._batch_id)
