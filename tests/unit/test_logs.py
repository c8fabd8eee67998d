"""Structured log lines: JSON, ids as fields, the API key masked."""

from __future__ import annotations

import logging

import orjson

from batchline.logs import JsonFormatter, SecretMask


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "batchline.test", "levelname": "INFO", "msg": msg, "args": args}
    )
    record.__dict__.update(extra)
    return record


def test_logs__one_json_object_with_ids_as_fields() -> None:
    line = JsonFormatter().format(_record("batch %d ended", 7, batch_id=7, remote_id="msgbatch_1"))
    doc = orjson.loads(line)
    assert "\n" not in line
    assert doc["event"] == "batch 7 ended"
    assert (doc["batch_id"], doc["remote_id"], doc["level"]) == (7, "msgbatch_1", "INFO")


def test_logs__the_api_key_is_masked_wherever_it_appears() -> None:
    record = _record("request failed with key %s", "sk-ant-secret-123")
    assert SecretMask("sk-ant-secret-123").filter(record)
    assert "sk-ant-secret-123" not in JsonFormatter().format(record)
    assert "[api key]" in record.getMessage()
