"""Property test: random interleavings of the pipeline's steps and its failures.

Hypothesis drives enqueue, assemble, submit (cleanly, with its answer lost,
with the worker dying after create, or with nothing created), remote batches
ending with random outcomes, polls, ingestions (whole, cut midway, repeated),
clock jumps and reconciliation, over the real SQL store (SQLite) and the
in-memory Batch API. After every step: every request is in exactly one known
state, a final state never changes, and no request has two winning results.
At the end, running the loop to quiescence leaves every request final.
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import func, select

from batchline.adapters.batch_api import CreateOutcomeUnknown
from batchline.adapters.memory_api import MemoryBatchApi, succeed
from batchline.adapters.notify import NullNotifier
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import intake as intake_sql
from batchline.adapters.sql import submit as submit_sql
from batchline.database import make_engine, make_session_factory
from batchline.domain.custom_ids import new_request_id
from batchline.domain.states import TERMINAL_REQUEST_STATES, BatchState, RequestState
from batchline.models import Batch, Request, Result, metadata
from batchline.services import assemble, ingest, poll, reconcile, submit
from batchline.services.context import Pipeline
from batchline.settings import Settings

OUTCOMES = ["succeeded", "overloaded_error", "invalid_request_error", "expired", "canceled"]


def _answer(kind: str, custom_id: str, params: dict[str, Any]) -> dict[str, Any]:
    if kind == "succeeded":
        return succeed(custom_id, params)
    if kind in ("expired", "canceled"):
        return {"type": kind}
    return {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": ""}}}


class PipelineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(self.dir.name) / 'sm.sqlite3'}"
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.outcome_for: dict[str, str] = {}
        self.api = MemoryBatchApi(now=lambda: self.now, respond=self._respond)
        self.pipeline = Pipeline(
            settings=Settings(
                database_url=url,
                max_batch_requests=4,
                max_wait_seconds=0,
                create_timeout_seconds=30,
                max_attempts=3,
            ),
            engine=self.engine,
            sessions=make_session_factory(self.engine),
            api=self.api,
            intake=None,  # type: ignore[arg-type]  # requests are inserted directly
            notifier=NullNotifier(),
            clock=lambda: self.now,
        )
        self.final: dict[str, str] = {}

    def teardown(self) -> None:
        self.engine.dispose()
        self.dir.cleanup()

    def _respond(self, custom_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return _answer(self.outcome_for.get(custom_id, "succeeded"), custom_id, params)

    @rule(n=st.integers(min_value=1, max_value=5))
    def enqueue(self, n: int) -> None:
        rows = [
            {
                "id": new_request_id(),
                "idempotency_key": None,
                "state": RequestState.QUEUED,
                "params": '{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}',
                "params_bytes": 70,
                "model": "m",
                "tags": None,
                "on_result": None,
                "batch_id": None,
                "attempts": 0,
                "charged_attempts": 0,
                "max_attempts": 3,
                "enqueued_at": self.now,
                "created_at": self.now,
                "updated_at": self.now,
            }
            for _ in range(n)
        ]
        with self.pipeline.sessions.begin() as session:
            intake_sql.insert_requests(session, rows)

    @rule()
    def assemble(self) -> None:
        assemble.assemble_batches(self.pipeline)

    @rule(how=st.sampled_from(["clean", "lost_answer", "died_after_create", "nothing_made"]))
    def submit(self, how: str) -> None:
        ready = submit.submit_ready_batches(self.pipeline)
        if not ready:
            return
        batch_id = ready[0]
        if how == "lost_answer":
            self.api.lose_next_creates = 1
        elif how == "nothing_made":
            self.api.refuse_next_creates.append(CreateOutcomeUnknown("reset"))
        if how != "died_after_create":
            submit.submit_batch(self.pipeline, batch_id)
            return
        with self.pipeline.sessions.begin() as session:
            if not submit_sql.begin_submission(session, batch_id, self.now):
                return
            deployment = controls_sql.deployment_name(session, "", self.now)
        with self.pipeline.engine.connect() as conn:
            self.api.create(submit_sql.iter_batch_body(conn, batch_id, deployment))

    @rule()
    def duplicate_create(self) -> None:
        """A create whose answer was lost, sent again (as an SDK retry would): two paid batches."""
        with self.pipeline.sessions() as session:
            batch_id = session.scalar(
                select(Batch.id).where(Batch.state == BatchState.UNKNOWN).limit(1)
            )
        if batch_id is None:
            return
        with self.pipeline.sessions.begin() as session:
            deployment = controls_sql.deployment_name(session, "", self.now)
        with self.pipeline.engine.connect() as conn:
            body = list(submit_sql.iter_batch_body(conn, batch_id, deployment))
        self.api.lose_next_creates = 1
        with contextlib.suppress(CreateOutcomeUnknown):
            self.api.create(body)

    @rule(kinds=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=8))
    def remote_batches_end(self, kinds: list[str]) -> None:
        for stored in self.api.batches.values():
            if stored.batch.ended:
                continue
            for i, (custom_id, _) in enumerate(stored.requests):
                self.outcome_for[custom_id] = kinds[i % len(kinds)]
        self.api.end_all()

    @rule()
    def poll(self) -> None:
        with self.pipeline.sessions() as session:
            ids = list(session.scalars(select(Batch.id).where(Batch.state == BatchState.SUBMITTED)))
        for batch_id in ids:
            poll.poll_batch(self.pipeline, batch_id)

    @rule(twice=st.booleans())
    def ingest(self, twice: bool) -> None:
        for batch_id in poll.batches_to_ingest(self.pipeline):
            ingest.ingest_batch(self.pipeline, batch_id)
            if twice:
                with self.pipeline.sessions.begin() as session:
                    batch = session.get(Batch, batch_id)
                    assert batch is not None
                    batch.state = BatchState.ENDED
                ingest.ingest_batch(self.pipeline, batch_id)

    @rule(seconds=st.sampled_from([1, 31, 100, 400]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def reconcile(self) -> None:
        reconcile.reconcile(self.pipeline)

    @invariant()
    def every_request_in_one_known_state_and_finals_stay(self) -> None:
        with self.pipeline.sessions() as session:
            rows = session.execute(select(Request.id, Request.state, Request.batch_id)).all()
            wins = session.execute(
                select(Result.request_id, func.count())
                .where(Result.duplicate.is_(False), Result.result_type == "succeeded")
                .group_by(Result.request_id)
            ).all()
        known = {s.value for s in RequestState}
        for request_id, state, batch_id in rows:
            assert state in known
            assert (state == RequestState.IN_BATCH) == (batch_id is not None)
            if request_id in self.final:
                assert state == self.final[request_id], "a final state moved"
            elif state in {s.value for s in TERMINAL_REQUEST_STATES}:
                self.final[request_id] = state
        assert all(n == 1 for _, n in wins), "a request succeeded twice"

    @rule()
    def run_to_quiescence(self) -> None:
        """Everything recovers: faults stop, time passes, every request ends final."""
        self.api.lose_next_creates = 0
        self.api.refuse_next_creates.clear()
        self.outcome_for.clear()
        for _ in range(12):
            self.now += timedelta(seconds=200)
            reconcile.reconcile(self.pipeline)
            self.assemble()
            for batch_id in submit.submit_ready_batches(self.pipeline):
                submit.submit_batch(self.pipeline, batch_id)
            self.api.end_all()
            self.poll()
            self.ingest(twice=False)
        with self.pipeline.sessions() as session:
            left = session.execute(
                select(Request.state, func.count())
                .where(Request.state.not_in([s.value for s in TERMINAL_REQUEST_STATES]))
                .group_by(Request.state)
            ).all()
        assert left == [], f"requests not final after recovery: {left}"


PipelineMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_pipeline_state_machine = PipelineMachine.TestCase
