"""The overview's charts draw what the data says: queue depth and throughput
from snapshots, cache hit rate per batch from the running totals, per prefix
group and per tag from the latest results."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from batchline import snapshots
from batchline.adapters import queries
from batchline.dashboard import charts, series
from batchline.dashboard.app import create_app
from batchline.database import make_engine, make_session_factory
from batchline.models import Batch, Request, Result, Snapshot
from tests.conftest import make_settings

NOW = datetime.now(UTC).replace(microsecond=0)


def _bars(svg: str) -> dict[str, str]:
    """Each bar's label and value, read back from its tooltip."""
    return dict(re.findall(r"<title>([^<]*): ([^<:]+)</title>", svg))


def _snap(minutes: int, intake: int, queued: int, final: int) -> Snapshot:
    return Snapshot(
        taken_at=NOW + timedelta(minutes=minutes),
        intake_depth=intake,
        queued=queued,
        in_batch=0,
        final=final,
    )


def test_queue_and_throughput__from_consecutive_snapshots() -> None:
    snaps = [_snap(0, 50, 10, 0), _snap(1, 20, 5, 30), _snap(3, 0, 0, 130)]
    depth = series.queue_depth(snaps)
    assert [v for _, v in depth] == [60, 25, 0]
    # 30 settled in the first minute; 100 over the next two: 50 a minute.
    assert [v for _, v in series.throughput(snaps)] == [30, 50]
    drawn = _bars(charts.bars("throughput", series.throughput(snaps), "/min"))
    assert list(drawn.values()) == ["30/min", "50/min"]


def _settled(prefix: str | None, team: str, read: int, fresh: int) -> queries.Settled:
    return queries.Settled(
        NOW,
        NOW + timedelta(seconds=5),
        prefix,
        {"team": team},
        queries.CacheStats(cache_write_tokens=0, cache_read_tokens=read, input_tokens=fresh),
    )


def test_hit_rate__per_prefix_group_and_per_tag_from_the_sample() -> None:
    sample = [
        _settled("aaaaaaaaaaaa", "red", 75, 25),
        _settled("aaaaaaaaaaaa", "blue", 25, 75),
        _settled(None, "blue", 0, 100),
    ]
    assert series.hit_by_group(sample, None) == [("aaaaaaaa", 50.0), ("no prefix", 0.0)]
    assert series.common_tag(sample) == "team"
    per_tag = series.hit_by_group(sample, "team")
    assert per_tag == [("blue", 12.5), ("red", 75.0)]
    assert _bars(charts.bars("per tag", per_tag, "%")) == {"blue": "12.5%", "red": "75%"}


@pytest.mark.integration
def test_overview__draws_the_charts_from_the_database(db_url: str, redis_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        for b, (read, fresh) in {1: (80, 20), 2: (10, 90)}.items():
            s.add(
                Batch(
                    id=b,
                    state="ingested",
                    request_count=1,
                    created_at=NOW,
                    updated_at=NOW,
                    remote_id=f"msgbatch_{b}",
                )
            )
            s.flush()
            s.add(
                Request(
                    id=f"r{b}",
                    state="succeeded",
                    params_bytes=2,
                    model="m",
                    tags={"team": f"team-{b}"},
                    prefix_hash=f"prefix{b}" * 4,
                    attempts=1,
                    charged_attempts=1,
                    max_attempts=3,
                    enqueued_at=NOW,
                    created_at=NOW,
                    updated_at=NOW,
                    finished_at=NOW + timedelta(seconds=9 * b),
                )
            )
            s.flush()
            s.add(
                Result(
                    batch_id=b,
                    custom_id=f"r{b}-1",
                    request_id=f"r{b}",
                    attempt=1,
                    result_type="succeeded",
                    line=b"{}",
                    input_tokens=fresh,
                    output_tokens=1,
                    cache_write_5m_tokens=0,
                    cache_write_1h_tokens=0,
                    cache_read_tokens=read,
                    cost_usd=Decimal("0.1"),
                    duplicate=False,
                    created_at=NOW,
                )
            )
    snapshots.take(sessions, NOW - timedelta(minutes=2), 40)
    with sessions.begin() as s:
        s.add(
            Request(
                id="r3",
                state="queued",
                params_bytes=2,
                model="m",
                attempts=0,
                charged_attempts=0,
                max_attempts=3,
                enqueued_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    snapshots.take(sessions, NOW - timedelta(minutes=1), 7)
    engine.dispose()
    with TestClient(create_app(make_settings(db_url, redis_url))) as client:
        html = client.get("/").text
    figures = {
        caption: _bars(svg)
        for caption, svg in re.findall(r"<figcaption>([^<]+)</figcaption>(<svg.*?</svg>)", html)
    }
    by_batch = figures["cache hit rate per batch (latest 20 batches)"]
    assert by_batch == {"#1": "80%", "#2": "10%"}
    assert set(figures["cache hit rate per prefix group (latest 2,000 results)"].values()) == {
        "80%",
        "10%",
    }
    assert figures["cache hit rate per tag team (latest 2,000 results)"] == {
        "team-1": "80%",
        "team-2": "10%",
    }
    # Two snapshots: 40 in the intake + 0 queued, then 7 + 1 queued.
    assert list(figures["queue depth (intake + queued), last 6 h"].values()) == [
        "40 requests",
        "8 requests",
    ]
    assert "no data yet" not in html.split("throughput")[1][:200]
