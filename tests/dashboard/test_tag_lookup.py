"""The lookup `tag=value` (dashboard and producer handles) finds what it found
before the tags index: the string typed, or the number or boolean it spells,
never a request without that tag or with another value; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from batchline.adapters import queries
from batchline.database import make_engine, make_session_factory
from batchline.models import Request

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TAGS: dict[str, dict[str, Any] | None] = {
    "a": {"team": "billing"},
    "b": {"team": "search", "n": 7},
    "c": {"n": "7", "flag": True},
    "d": {"quote": 'it\'s "q"', "n": 7.5},
    "e": None,
    "f": {"team": "billing", "n": None},
    # The value is rendered into the statement (see queries.tag_is): hostile text
    # must be a value, found as typed, never SQL.
    "g": {"who": "x'); DELETE FROM requests; --", "path": "back\\slash'\\"},
}


def _request(key: str, n: int) -> Request:
    return Request(
        # Ids sort as they were made (their first characters are the enqueue time).
        id=f"{n:012x}{key}",
        state="queued",
        params_bytes=2,
        model="m",
        tags=TAGS[key],
        attempts=0,
        charged_attempts=0,
        max_attempts=3,
        enqueued_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("name", "value", "found"),
    [
        ("team", "billing", "fa"),
        ("team", "search", "b"),
        ("team", "nobody", ""),
        ("n", "7", "cb"),
        ("n", "7.5", "d"),
        ("n", "null", ""),
        ("flag", "true", "c"),
        ("flag", "false", ""),
        ("quote", 'it\'s "q"', "d"),
        ("missing", "billing", ""),
        ("who", "x'); DELETE FROM requests; --", "g"),
        ("who", "x'", ""),
        ("path", "back\\slash'\\", "g"),
        ("team", "billing'} OR '1'='1", ""),
    ],
)
def test_tag_lookup__finds_the_value_as_typed(
    db_url: str, name: str, value: str, found: str
) -> None:
    if db_url.startswith("sqlite") and value in ("true", "false"):
        pytest.skip("SQLite's JSON reads a boolean as 1 or 0 (so it did before the index)")
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine).begin() as s:
            s.add_all(_request(key, n) for n, key in enumerate(TAGS))
        with make_session_factory(engine)() as s:
            newest = queries.newest_request_ids_by_tag(s, name, value, 50)
            oldest = queries.request_ids_by_tag(s, name, value)
        assert [i[-1] for i in newest] == list(found)
        assert sorted(oldest) == sorted(newest)
        with make_session_factory(engine)() as s:
            assert s.query(Request).count() == len(TAGS)  # nothing ran but the lookup
    finally:
        engine.dispose()
