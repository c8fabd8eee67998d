"""Lifting a pause the API itself can tell is over.

A pause for a refused key (401/403) clears once one cheap authenticated call
with the key this process holds succeeds: a corrected key in a restarted
worker resumes without anyone running `batchline resume`. Billing pauses are
left for a person.
"""

from __future__ import annotations

import logging

from batchline.adapters.batch_api import ApiUnavailable
from batchline.adapters.sql import controls as controls_sql
from batchline.domain.pauses import KEY, pause_kind
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.pauses")


def clear_key_pause(pipeline: Pipeline) -> str | None:
    """The pause still in force after checking the key (None: not paused)."""
    with pipeline.sessions() as session:
        reason = controls_sql.submission_paused(session)
    if reason is None or pause_kind(reason) != KEY:
        return reason
    try:
        # One page of the batch list: authenticated, cheap, creates nothing.
        next(iter(pipeline.api.list_recent(pipeline.clock())), None)
    except ApiUnavailable:
        return reason
    except Exception as exc:
        if getattr(exc, "status_code", None) in (401, 403):
            return reason  # still refused: nothing new to log
        raise
    with pipeline.sessions.begin() as session:
        # Only the pause we checked: a billing pause set meanwhile stays.
        if not controls_sql.resume_submission(session, only_if=reason):
            return controls_sql.submission_paused(session)
    log.warning("submission resumed: the API accepts the current key again")
    return None
