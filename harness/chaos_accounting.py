"""The chaos run's accounting: every request, remote batch and dead letter, counted.

Over SQL, the intake stream's dead letters in Redis and the emulator's own
records (every batch it ever made, with the custom_ids it was sent):

- accepted requests lost or unaccounted (accepted, not in SQL);
- requests sent twice, per request over all remote batches (not per batch):
  a custom_id (one attempt) in two batches, or a request in more batches than
  one plus its results that asked for a retry (errored, expired, malformed);
  the justified resends are counted apart as retries;
- requests failed that never ran (in no remote batch at all), and requests
  charged more attempts than remote batches they were in;
- requests not final at the end, or a stall after the faults (no request
  became final while some were open) longer than two sweeps plus one ingest
  lease; the time from the drain (intake stream empty, nothing queued for a
  batch) to the last request final is printed beside it;
- remote batches SQL does not know; dead letters without a reason, and poison
  entries that were not dead-lettered.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import text

from batchline.database import make_engine
from batchline.domain.states import TERMINAL_REQUEST_STATES
from batchline.emulator.admin import Records
from batchline.keys import RedisKeys
from harness.chaos_faults import Injected

_REQUEST_IN_CUSTOM_ID = re.compile(r"^bl(?:[a-z0-9]{1,16}_)?([0-9a-f]{32})-[0-9]{1,6}$")


@dataclass
class ChaosFigures:
    accepted: int = 0
    refused_enqueues: int = 0
    sql_requests: int = 0
    states: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    not_final: list[str] = field(default_factory=list)
    sent_twice: list[str] = field(default_factory=list)
    # In more than one remote batch, each time as a new attempt (errored or expired, retried).
    retried: int = 0
    failed_unsent: list[str] = field(default_factory=list)
    charged_unsent: list[str] = field(default_factory=list)
    double_success: list[str] = field(default_factory=list)
    succeeded_without_result: list[str] = field(default_factory=list)
    unknown_remote: list[str] = field(default_factory=list)
    unknown_foreign: list[str] = field(default_factory=list)
    dead_letters: int = 0
    dead_letters_without_reason: list[str] = field(default_factory=list)
    poison_not_dead_lettered: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    remote_batches: int = 0
    creates: int = 0
    lost_create_responses: int = 0
    duplicate_results: int = 0
    results: int = 0
    injected: Injected = field(default_factory=Injected)
    redis_kills: int = 0
    pg_outages: int = 0
    # From the drain (faults over, intake empty, nothing queued) to every request final.
    recovery_seconds: float | None = None
    # After the faults: the longest time no request became final while some were open.
    longest_stall_seconds: float = 0.0
    recovery_bound_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def recovered_in_bound(self) -> bool:
        """Nothing wedged: all final, and never a stall longer than the bound."""
        return (
            self.recovery_seconds is not None
            and self.longest_stall_seconds <= self.recovery_bound_seconds
        )

    @property
    def ok(self) -> bool:
        return self.recovered_in_bound and not (
            self.lost
            or self.not_final
            or self.sent_twice
            or self.failed_unsent
            or self.charged_unsent
            or self.double_success
            or self.succeeded_without_result
            or self.unknown_remote
            or self.dead_letters_without_reason
            or self.poison_not_dead_lettered
        )

    def lines(self) -> list[str]:
        def some(xs: list[str]) -> str:
            return f"{len(xs)}" + (f" e.g. {xs[:3]}" if xs else "")

        i = self.injected
        recovered = "never" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f} s"
        return [
            f"accepted enqueues           {self.accepted} (refused, retried: "
            f"{self.refused_enqueues})",
            f"requests in SQL             {self.sql_requests}  states {self.states}",
            f"lost or unaccounted         {some(self.lost)}",
            f"sent twice (any batches)    {some(self.sent_twice)} (sent again after an "
            f"errored/expired/malformed result: {self.retried})",
            f"failed, never ran           {some(self.failed_unsent)}",
            f"charged attempts not sent   {some(self.charged_unsent)}",
            f"two non-dup successes       {some(self.double_success)}",
            f"succeeded, no result        {some(self.succeeded_without_result)}",
            f"not final                   {some(self.not_final)}",
            f"longest stall after faults  {self.longest_stall_seconds:.1f} s (bound: 2 sweeps + "
            f"1 lease = {self.recovery_bound_seconds:.0f} s); all final {recovered} after drain",
            f"remote batches unknown      {some(self.unknown_remote)}",
            f"emulator batches            {self.remote_batches}; creates {self.creates}; "
            f"answers lost after the create {self.lost_create_responses}",
            f"batches in SQL              {self.batches}",
            f"foreign batches made        {len(i.foreign_batches)}, unknown to SQL "
            f"{some(self.unknown_foreign)}",
            f"dead letters                {self.dead_letters}; without reason "
            f"{some(self.dead_letters_without_reason)}; poison entries not dead-lettered "
            f"{some(self.poison_not_dead_lettered)}",
            f"dead-letter reasons         {self.reasons}",
            f"results rows                {self.results}; duplicate spend {self.duplicate_results}",
            f"faults                      worker kills {i.worker_kills}, redis kills "
            f"{self.redis_kills}, pg outages {self.pg_outages}, second beat {i.second_beat}, "
            f"creates lost before made {i.lost_before_made}, poison entries "
            f"{len(i.poison_entries)}, spoiled results bodies {i.spoiled_served}, "
            f"endless lines {i.endless_served}, Redis full after {i.redis_full_accepted} more "
            f"(refused {i.redis_full_refusals}), exited on their own and restarted "
            f"{i.exits_restarted or 0}",
            f"duration                    {self.seconds:.0f} s",
            "VERDICT                     " + ("every promise kept" if self.ok else "BROKEN"),
        ]


def sent_per_custom_id(records: Records) -> tuple[Counter[str], Counter[str]]:
    """How many remote batches hold each custom_id, and each request (any attempt)."""
    by_custom_id: Counter[str] = Counter()
    by_request: Counter[str] = Counter()
    for batch in records.batches:
        for custom_id in batch.custom_ids or ():
            match = _REQUEST_IN_CUSTOM_ID.match(custom_id)
            if match is not None:
                by_custom_id[custom_id] += 1
                by_request[match.group(1)] += 1
    return by_custom_id, by_request


def account(
    figures: ChaosFigures, records: Records, db_url: str, redis_url: str, accepted: set[str]
) -> None:
    """Fills `figures` from SQL, Redis's dead letters and the emulator's records."""
    f = figures
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, state, charged_attempts FROM requests")).all()
            successes = Counter(
                r
                for (r,) in conn.execute(
                    text(
                        "SELECT request_id FROM results WHERE request_id IS NOT NULL"
                        " AND result_type = 'succeeded' AND NOT duplicate"
                    )
                )
            )
            # Each result that is not a success can justify one more send (a retry).
            retry_causes = Counter(
                r
                for (r,) in conn.execute(
                    text(
                        "SELECT request_id FROM results WHERE request_id IS NOT NULL"
                        " AND result_type IN ('errored', 'expired', 'malformed')"
                    )
                )
            )
            batches = conn.execute(text("SELECT remote_id, state FROM batches")).all()
            f.results = conn.execute(text("SELECT count(*) FROM results")).scalar_one()
            f.duplicate_results = conn.execute(
                text("SELECT count(*) FROM results WHERE duplicate")
            ).scalar_one()
    finally:
        engine.dispose()
    by_custom_id, by_request = sent_per_custom_id(records)
    states = {str(i): str(s) for i, s, _ in rows}
    terminal = {s.value for s in TERMINAL_REQUEST_STATES}
    f.sql_requests = len(states)
    f.states = dict(Counter(states.values()))
    f.lost = sorted(accepted - states.keys())
    f.not_final = sorted(i for i, s in states.items() if s not in terminal)
    same_attempt_twice = {m.group(1) for c, n in by_custom_id.items() if n > 1 if (m := _match(c))}
    # A request of ours in more remote batches than one plus its non-success results:
    # sent again although no result asked for it (e.g. a batch whose results were
    # never read, its requests sent again as a new attempt).
    unjustified = {r for r, n in by_request.items() if r in states and n > 1 + retry_causes[r]}
    f.sent_twice = sorted(same_attempt_twice | unjustified)
    f.retried = sum(n > 1 for r, n in by_request.items() if r not in f.sent_twice)
    f.failed_unsent = sorted(i for i, s in states.items() if s == "failed" and not by_request[i])
    f.charged_unsent = sorted(str(i) for i, _, c in rows if c > by_request[str(i)])
    f.double_success = sorted(i for i, n in successes.items() if n > 1)
    f.succeeded_without_result = sorted(
        i for i, s in states.items() if s == "succeeded" and successes[i] != 1
    )
    f.batches = dict(Counter(str(state) for _, state in batches))
    known = {remote for remote, _ in batches}
    f.unknown_remote = sorted(b.id for b in records.batches if b.id not in known)
    f.unknown_foreign = sorted(set(f.injected.foreign_batches) - known)
    f.remote_batches = len(records.batches)
    f.creates = records.creates
    f.lost_create_responses = records.lost_create_responses
    _account_dead_letters(f, redis_url)


def _match(custom_id: str) -> re.Match[str] | None:
    return _REQUEST_IN_CUSTOM_ID.match(custom_id)


def _account_dead_letters(f: ChaosFigures, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        letters: Any = client.xrange(RedisKeys().dead_letters)
    finally:
        client.close()
    entries: set[str] = set()
    reasons: Counter[str] = Counter()
    for letter_id, fields in letters:
        reason = fields.get(b"reason", b"").decode(errors="replace")
        entries.add(fields.get(b"entry", b"").decode())
        reasons[_reason_kind(reason)] += 1
        if not reason.strip():
            f.dead_letters_without_reason.append(letter_id.decode())
    f.dead_letters = len(letters)
    f.reasons = dict(reasons)
    f.poison_not_dead_lettered = sorted(set(f.injected.poison_entries) - entries)


def _reason_kind(reason: str) -> str:
    """A reason without the values in it, so that like reasons count together."""
    said = reason.split("': ", 1)[-1]  # after "unreadable intake entry b'<id>'", if there
    return _VALUES.sub("_", said).strip()[:50] or "(none)"


_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+\b")


def sql_list(values: Iterable[str]) -> str:
    # Constant state names from the domain enums, never user input.
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"
