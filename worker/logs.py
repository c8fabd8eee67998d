"""Structured logs: one JSON object a line, with batch and request ids as fields.

Services log with `extra={"batch_id": ..., "remote_id": ..., "request_id": ...}`;
the formatter lifts those into fields. A filter masks the API key should it
ever reach a message (the code never logs it; this is the second lock).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

FIELDS = ("batch_id", "remote_id", "request_id", "task", "count")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class SecretMask(logging.Filter):
    """Replaces the API key in any formatted message with a placeholder."""

    def __init__(self, secret: str | None) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secret and self._secret in record.getMessage():
            record.msg = record.getMessage().replace(self._secret, "[api key]")
            record.args = ()
        return True


def configure(level: str = "INFO", fmt: str = "json", secret: str | None = None) -> None:
    """Root logging for batchline processes: JSON lines unless `fmt` is text
    (BATCHLINE_LOG_FORMAT); `secret` (the API key) is masked in every line."""
    handler = logging.StreamHandler()
    if fmt == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretMask(secret))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
