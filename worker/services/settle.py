"""Settling: what each newly stored result, or its absence, does to its request.

The retry policy (batchline.domain.retry) decides; this carries the decisions
out in the ingesting transaction, grouped so that one guarded UPDATE moves
every request that goes the same way. A result for a request that has moved on
(settled by another batch, or a later attempt) is kept and marked a duplicate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import ingest as ingest_sql
from batchline.adapters.sql import intake as intake_sql
from batchline.domain.custom_ids import RequestRef
from batchline.domain.results import ParsedResult
from batchline.domain.retry import Decision, Failure, decide, result_failure
from batchline.domain.states import TERMINAL_REQUEST_STATES, RequestState

log = logging.getLogger("batchline.ingest")

MISSING_REASON = "no readable result in the batch's results"

# Requests that go the same way: next state, whether the attempt counts, error text.
Group = tuple[RequestState, bool, str | None]


@dataclass
class Settled:
    """What settling moved: requests by new state, duplicates, requests made final."""

    by_state: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    final: list[str] = field(default_factory=list)
    # Results naming no request in SQL: kept without one, settling nothing.
    unknown: int = 0


def settle_results(
    session: Session,
    batch_id: int,
    fresh: Sequence[tuple[ParsedResult, RequestRef]],
    now: datetime,
) -> Settled:
    """Move each fresh result's request on, as the retry policy decides."""
    out = Settled()
    succeeded = [ref for p, ref in fresh if p.result_type == "succeeded"]
    # Most results succeed, and a success needs nothing of the request but its
    # membership: one guarded UPDATE settles them all, no rows read first.
    moved = ingest_sql.settle_attempts(session, batch_id, succeeded, RequestState.SUCCEEDED, now)
    out.by_state[RequestState.SUCCEEDED.value] += len(moved)
    out.final.extend(moved)
    # (custom_id, request_id) of results that move nothing: settled elsewhere, or unknown.
    stale = [
        (p.custom_id, ref.request_id)
        for p, ref in fresh
        if p.result_type == "succeeded" and ref.request_id not in moved
    ]
    failed = [(p, ref) for p, ref in fresh if p.result_type != "succeeded"]
    groups, pause_reason = _decide_failures(session, batch_id, failed, stale)
    duplicates = _without_unknown(session, batch_id, stale, out)
    if duplicates:
        # Results for requests already settled elsewhere: a duplicate, paid for.
        ingest_sql.mark_duplicates(session, batch_id, duplicates)
        out.duplicates += len(duplicates)
    if pause_reason is not None:
        controls_sql.pause_submission(session, pause_reason, now)
    for (state, charge, error), ids in groups.items():
        moved_ids = ingest_sql.settle_requests(session, batch_id, ids, state, now, charge, error)
        out.by_state[state.value] += len(moved_ids)
        if state in TERMINAL_REQUEST_STATES:
            out.final.extend(moved_ids)
    return out


def _decide_failures(
    session: Session,
    batch_id: int,
    failed: Sequence[tuple[ParsedResult, RequestRef]],
    stale: list[tuple[str, str]],
) -> tuple[dict[Group, list[str]], str | None]:
    """The policy's decision for each failed result, grouped, and why submission
    must pause (if one says so). Results whose request moved on join `stale`."""
    members = ingest_sql.load_members(session, [ref.request_id for _, ref in failed])
    groups: dict[Group, list[str]] = defaultdict(list)
    pause_reason = None
    for parsed, ref in failed:
        member = members.get(ref.request_id)
        if (
            member is None
            or member.state != RequestState.IN_BATCH
            or member.batch_id != batch_id
            or member.attempts != ref.attempt
        ):
            stale.append((parsed.custom_id, ref.request_id))
            continue
        kind = result_failure(parsed.result_type, parsed.error_type)
        assert kind is not None  # successes were settled above
        decision = decide(kind, member.charged_attempts + 1, member.max_attempts)
        if decision.pause_submission:
            pause_reason = f"batch {batch_id}: {parsed.error_type}: {parsed.error_message}"
        groups[_group(decision, _error_text(parsed))].append(ref.request_id)
    return groups, pause_reason


def _without_unknown(
    session: Session, batch_id: int, stale: list[tuple[str, str]], out: Settled
) -> list[str]:
    """The custom_ids of `stale` whose request exists. A result naming no request
    in SQL is kept without one (paid for, so counted), settles nothing, and is
    no duplicate. No foreign key catches it at the insert (see models.tables):
    this check costs nothing when every result moved its request, the usual case."""
    if not stale:
        return []
    known = intake_sql.existing_request_ids(session, [r for _, r in stale])
    unknown = [c for c, r in stale if r not in known]
    if unknown:
        log.error(
            "batch %d: %d results name no known request, e.g. %s",
            batch_id,
            len(unknown),
            unknown[0],
            extra={"batch_id": batch_id},
        )
        ingest_sql.forget_requests(session, batch_id, unknown)
        out.unknown += len(unknown)
    return [c for c, r in stale if r in known]


def settle_missing(session: Session, batch_id: int, now: datetime) -> int:
    """Requests still in the batch once its stream ended without their lines
    (unreadable, or never sent): the policy's RESULT_MISSING. Returns how many moved."""
    left = ingest_sql.requests_left_in_batch(session, batch_id)
    if not left:
        return 0
    log.warning("batch %d: %d requests had no readable result", batch_id, len(left))
    members = ingest_sql.load_members(session, left)
    groups: dict[Group, list[str]] = defaultdict(list)
    for request_id in left:
        m = members[request_id]
        decision = decide(Failure.RESULT_MISSING, m.charged_attempts + 1, m.max_attempts)
        groups[_group(decision, MISSING_REASON)].append(request_id)
    moved = 0
    for (state, charge, error), ids in groups.items():
        moved += len(ingest_sql.settle_requests(session, batch_id, ids, state, now, charge, error))
    return moved


def _group(decision: Decision, error: str | None) -> Group:
    assert decision.next_state is not None, "a result's decision names the request's state"
    return decision.next_state, decision.charge, error


def _error_text(parsed: ParsedResult) -> str | None:
    if parsed.result_type == "expired":
        return "expired"
    if parsed.error_type is None:
        return None
    return f"{parsed.error_type}: {parsed.error_message}"
