"""Counting the requests Redis lost: accepted, then gone before intake committed them.

Redis keeps a ledger beside the intake stream: a random epoch id, when it
began, and how many requests were accepted into it (counted atomically with
each write). A flush, or a restart without persistence, takes the ledger with
the stream, so an observer (the beat, every few seconds, and `batchline
status`/`doctor`/the metrics) copies it into SQL. When the epoch in Redis is no
longer the one SQL saw, the old epoch is closed: every request it accepted
should be in SQL, and those that are not, Redis lost.

    lost(epoch) = accepted (at the last observation) - requests in SQL with ids
                  made between the epoch's start and that observation

Limits, stated plainly: requests accepted after the last observation before a
loss are not counted (their handles still report `lost`); producer clocks that
disagree by more than a few seconds misplace requests at an epoch's edges;
requests written by durable enqueue in the same time window count as reached.
A restart that reloads an older RDB snapshot keeps the epoch and is not seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters import loss_ledger
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.redis_health import make_client
from batchline.database import make_engine, make_session_factory
from batchline.keys import RedisKeys
from batchline.settings import Settings

# A closed epoch's count is looked at again for this long: intake may still be
# committing a chunk it read just before the loss.
SETTLE_MS = 10 * 60 * 1000
KEEP_CLOSED = 50


@dataclass(frozen=True)
class LossReport:
    lost: int
    losses: int  # epochs that ended with Redis losing data


def observe(sessions: sessionmaker[Session], stream: RedisIntakeStream) -> LossReport:
    """Compare Redis's ledger with SQL's record of it; record and count losses."""
    ledger = stream.ledger()  # Redis errors propagate: the caller says "unknown"
    now_ms = time.time_ns() // 1_000_000
    with sessions.begin() as session:
        record = loss_ledger.load_epochs(session)
        _advance(record, ledger, now_ms)
        for closed in record.get("closed", []):
            if now_ms - closed["closed_at"] < SETTLE_MS or "lost" not in closed:
                reached = loss_ledger.count_ids_between(session, closed["since"], closed["seen"])
                closed["lost"] = max(0, closed["accepted"] - reached)
        loss_ledger.save_epochs(session, record, datetime.now(UTC))
    closed = record.get("closed", [])
    return LossReport(sum(c["lost"] for c in closed), sum(1 for c in closed if c["lost"]))


def _advance(record: dict[str, Any], ledger: dict[str, str], now_ms: int) -> None:
    current = record.get("current")
    epoch = ledger.get("epoch")
    if current is not None and current["epoch"] != epoch:
        # The epoch SQL knew is gone from Redis: whatever it still held is lost.
        closed = {**current, "closed_at": now_ms}
        record["closed"] = [*record.get("closed", []), closed][-KEEP_CLOSED:]
        current = None
    if epoch is not None:
        since = int(ledger.get("since") or now_ms)
        record["current"] = {
            "epoch": epoch,
            "since": since,
            "accepted": int(ledger.get("accepted") or 0),
            "seen": now_ms,
        }
    else:
        record["current"] = None


def lost_count(settings: Settings) -> int | None:
    """Requests Redis lost, counted now (for status, metrics, doctor); None: cannot tell."""
    client = make_client(settings)
    engine = make_engine(settings.database_url)
    try:
        stream = RedisIntakeStream(client, RedisKeys(settings.stream_key_prefix))
        return observe(make_session_factory(engine), stream).lost
    except (redis.RedisError, SQLAlchemyError):
        return None
    finally:
        client.close()
        engine.dispose()
