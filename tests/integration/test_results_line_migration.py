"""The migration to results kept as lines converts existing rows, both ways, on both backends."""

from __future__ import annotations

import orjson
import pytest
from alembic import command
from sqlalchemy import text

from batchline.database import alembic_config, make_engine

pytestmark = pytest.mark.integration

BEFORE = "d1a7c0f5e2b4"
NOW = "2026-11-01 00:00:00+00:00"
RESULT = {"type": "succeeded", "message": {"id": "msg_1", "content": [{"text": "é ☃"}]}}


def test_results_line_migration__existing_results_keep_their_content(db_url: str) -> None:
    config = alembic_config(db_url)
    engine = make_engine(db_url)
    try:
        command.downgrade(config, BEFORE)
        with engine.begin() as conn:
            _insert_old_result(conn)
        command.upgrade(config, "head")
        with engine.begin() as conn:
            line = bytes(conn.scalar(text("SELECT line FROM results")))
            assert orjson.loads(line) == {"custom_id": "bl" + "a" * 32 + "-1", "result": RESULT}
            # A reply JSONB could not hold, on the way back.
            conn.execute(text("UPDATE results SET line = :line"), {"line": _with_nul(line)})
        command.downgrade(config, BEFORE)
        with engine.begin() as conn:
            body = conn.scalar(text("SELECT body FROM results"))
            body = orjson.loads(body) if isinstance(body, str | bytes) else body
            assert body["message"]["content"][0]["text"] in ("é ☃\ufffd", "é ☃\x00")
    finally:
        command.upgrade(config, "head")
        with engine.begin() as conn:
            for table in ("results", "requests", "batches"):
                conn.execute(text(f"DELETE FROM {table}"))
        engine.dispose()


def _with_nul(line: bytes) -> bytes:
    return line.replace("☃".encode(), "☃".encode() + b"\\u0000")


def _insert_old_result(conn: object) -> None:
    execute = conn.execute  # type: ignore[attr-defined]
    execute(
        text(
            "INSERT INTO batches (id, remote_id, state, origin, request_count, body_bytes, "
            "count_processing, count_succeeded, count_errored, count_canceled, count_expired, "
            "submit_tries, cancel_requested, created_at, updated_at) VALUES (1, 'msgbatch_1', "
            "'ingested', 'planned', 1, 0, 0, 1, 0, 0, 0, 1, false, :now, :now)"
        ),
        {"now": NOW},
    )
    execute(
        text(
            "INSERT INTO requests (id, state, params, params_bytes, model, attempts, "
            "charged_attempts, max_attempts, enqueued_at, created_at, updated_at, cache_ttl_1h) "
            "VALUES (:id, 'succeeded', '{}', 2, 'm', 1, 1, 3, :now, :now, :now, false)"
        ),
        {"id": "a" * 32, "now": NOW},
    )
    execute(
        text(
            "INSERT INTO results (batch_id, custom_id, request_id, attempt, result_type, body, "
            "input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
            "cache_read_tokens, duplicate, created_at) VALUES (1, :cid, :id, 1, 'succeeded', "
            ":body, 1, 1, 0, 0, 0, false, :now)"
        ),
        {
            "cid": "bl" + "a" * 32 + "-1",
            "id": "a" * 32,
            "body": orjson.dumps(RESULT).decode(),
            "now": NOW,
        },
    )
