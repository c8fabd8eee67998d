"""Prometheus metrics, read from SQL and Redis at scrape time.

SQL is the system of record, so the figures are the same whichever process
serves them, and nothing needs the prefork pool's multiprocess mode. Stage
durations come from the timestamps each batch carries. Task-level figures
(runtimes, failures by task name) are Flower's own `/metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Float, cast, func, select

from batchline.adapters import queries
from batchline.adapters.intake_counts import dead_letters, queue_depth
from batchline.database import READ_ONLY, database_problem, make_engine, make_session_factory
from batchline.deadline_report import at_risk_before, deadline_figures
from batchline.models import Batch, Result
from batchline.services.capacity import CapacityUse, capacity_use
from batchline.settings import Settings

log = logging.getLogger("batchline.metrics")

STAGES = {
    # name: (start column, end column)
    "submit": (Batch.submit_started_at, Batch.submitted_at),
    "remote": (Batch.remote_created_at, Batch.remote_ended_at),
    "ingest": (Batch.remote_ended_at, Batch.ingested_at),
}


class BatchlineCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def describe(self) -> list[Any]:
        # Declared empty so registering does not run a scrape's queries.
        return []

    def collect(self) -> Iterator[Any]:
        # A scrape that cannot read the database answers 200 with
        # batchline_database_ready 0 and the fix in its help text, not HTTP 500.
        problem = database_problem(self._settings)
        if problem is not None:
            log.warning("%s", problem)
        yield GaugeMetricFamily(
            "batchline_database_ready",
            "1: the database answers at the migrations' head"
            + ("" if problem is None else f"; 0 now: {problem}"),
            value=0 if problem else 1,
        )
        if problem is not None:
            return
        # An engine per scrape: scrapes are seconds apart, and nothing is left open.
        engine = make_engine(self._settings.database_url)
        try:
            reader = engine.execution_options(**{READ_ONLY: True})
            yield from self._collect(make_session_factory(reader))
        finally:
            engine.dispose()

    def _collect(self, sessions: Any) -> Iterator[Any]:
        from batchline.losses import lost_count

        depth = queue_depth(self._settings)
        yield GaugeMetricFamily(
            "batchline_intake_queue_depth",
            "Requests waiting in the Redis intake stream",
            depth or 0,
        )
        yield GaugeMetricFamily(
            "batchline_intake_dead_letters",
            "Intake entries dead-lettered (unreadable, or refused by the database)",
            dead_letters(self._settings) or 0,
        )
        lost = lost_count(self._settings)
        if lost is not None:
            yield GaugeMetricFamily(
                "batchline_lost_requests",
                "Requests accepted into Redis that Redis lost before they reached SQL",
                lost,
            )
        with sessions() as session:
            yield _by_label(
                "batchline_requests",
                "Requests by state",
                "state",
                queries.requests_by_state(session),
            )
            yield _by_label(
                "batchline_batches", "Batches by state", "state", queries.batches_by_state(session)
            )
            outcomes = CounterMetricFamily(
                "batchline_results", "Results by outcome", labels=["outcome"]
            )
            for kind, n in queries.results_by_type(session).items():
                outcomes.add_metric([kind], n)
            yield outcomes
            yield _by_label(
                "batchline_bad_results",
                "Results batchline could not take as sent: malformed, too large, "
                "refused by the database, or naming an unknown request",
                "kind",
                queries.bad_results(session),
            )
            yield from _capacity(capacity_use(session, self._settings.max_in_flight_requests))
            yield from _tokens(queries.token_totals(session))
            yield _stage_seconds(session)
            errors = session.scalar(select(func.count()).where(Batch.error.is_not(None))) or 0
            yield CounterMetricFamily(
                "batchline_batch_errors",
                "Batches whose last submit or poll recorded an error",
                value=errors,
            )
            cost = session.scalar(
                select(func.coalesce(func.sum(Result.cost_usd), 0)).where(Result.via == "batch")
            )
            yield CounterMetricFamily(
                "batchline_cost_usd", "Spend at batch prices, USD", value=float(cost or 0)
            )
            yield from _deadlines(session, self._settings)


def _deadlines(session: Any, settings: Settings) -> Iterator[Any]:
    figures = deadline_figures(session, at_risk_before(settings))
    yield _by_label(
        "batchline_fallbacks",
        "Synchronous fallbacks for deadlines, by state (done: answered; failed: given up)",
        "state",
        figures.fallbacks,
    )
    yield GaugeMetricFamily(
        "batchline_deadlines_at_risk",
        "Unsettled requests whose deadline is within the sync latency, not yet answered",
        figures.at_risk,
    )
    yield CounterMetricFamily(
        "batchline_fallback_cost_usd",
        "Spend on synchronous fallbacks for deadlines, at full price, USD",
        value=figures.sync_cost_usd,
    )


def _by_label(name: str, doc: str, label: str, counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in counts.items():
        family.add_metric([key], value)
    return family


def _capacity(use: CapacityUse) -> Iterator[GaugeMetricFamily]:
    yield GaugeMetricFamily(
        "batchline_capacity_in_flight",
        "Requests in batches the API has not finished (created or being created)",
        value=use.in_flight,
    )
    yield GaugeMetricFamily(
        "batchline_capacity_limit",
        "The in-flight limit in force: BATCHLINE_MAX_IN_FLIGHT_REQUESTS, lowered after"
        " a 429 on create until a create succeeds (0: no limit)",
        value=use.effective_limit,
    )
    yield GaugeMetricFamily(
        "batchline_capacity_lowered",
        "1 while a 429 on create holds the in-flight limit below the configured one",
        value=0 if use.effective is None else 1,
    )


def _tokens(totals: queries.TokenTotals) -> Iterator[CounterMetricFamily]:
    family = CounterMetricFamily("batchline_tokens", "Tokens in ingested results", labels=["kind"])
    family.add_metric(["input"], totals.input_tokens)
    family.add_metric(["output"], totals.output_tokens)
    family.add_metric(["cache_write"], totals.cache_write_tokens)
    family.add_metric(["cache_read"], totals.cache_read_tokens)
    yield family


def _stage_seconds(session: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "batchline_stage_seconds_avg",
        "Mean seconds per batch spent in each stage",
        labels=["stage"],
    )
    for stage, (start, end) in STAGES.items():
        seconds = _seconds_between(session, start, end)
        if seconds is not None:
            family.add_metric([stage], seconds)
    return family


def _seconds_between(session: Any, start: Any, end: Any) -> float | None:
    dialect = session.get_bind().dialect.name
    diff: Any
    if dialect == "postgresql":
        diff = func.extract("epoch", end - start)
    else:
        diff = (func.julianday(end) - func.julianday(start)) * 86400.0
    value = session.scalar(
        select(func.avg(cast(diff, Float))).where(start.is_not(None), end.is_not(None))
    )
    return None if value is None else float(value)


def registry_for(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BatchlineCollector(settings))
    return registry
