"""Snapshots of the queue for the dashboard's charts over time, taken by beat.

Each one reads the running totals (a few rows) and the intake's depth, so
taking one a minute (BATCHLINE_DASHBOARD_SNAPSHOT_SECONDS) costs nothing that
grows with the database. The same step folds the totals' difference rows and
drops snapshots older than a week.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters import summaries

KEPT = timedelta(days=7)


def take(sessions: sessionmaker[Session], now: datetime, intake_depth: int | None) -> None:
    with sessions.begin() as session:
        summaries.take_snapshot(session, now, intake_depth)
        summaries.compact(session)
        summaries.drop_snapshots_before(session, now - KEPT)
