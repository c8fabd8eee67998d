"""The Prometheus scrape trusts a recent head check, yet a database that fails
between scrapes still answers batchline_database_ready 0, not an HTTP 500."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from sqlalchemy import text

from batchline.database import make_engine
from batchline.metrics import registry_for
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def test_scrape__a_query_failing_after_a_good_scrape_reads_not_ready(
    sqlite_db: str, redis_url: str
) -> None:
    registry = registry_for(make_settings(sqlite_db, redis_url))
    first = generate_latest(registry).decode()
    assert "batchline_database_ready 1.0" in first
    assert 'batchline_requests{state="queued"}' not in first  # no requests yet
    engine = make_engine(sqlite_db)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE request_state_counts"))
    engine.dispose()
    second = generate_latest(registry).decode()
    assert "batchline_database_ready 0.0" in second
    assert "the database failed a query" in second
