"""Prometheus metrics, read from SQL and Redis at scrape time.

SQL is the system of record, so the figures are the same whichever process
serves them, and nothing needs the prefork pool's multiprocess mode. Stage
durations come from the timestamps each batch carries; the SQL is in
`adapters.queries` and `adapters.metrics_queries`, counts from running totals. Task-level figures
(runtimes, failures by task name) are Flower's own `/metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from batchline.adapters import metrics_queries, queries
from batchline.adapters.intake_counts import dead_letters, queue_depth
from batchline.database import READ_ONLY, database_problem, make_engine, make_session_factory
from batchline.deadline_report import at_risk_before, deadline_figures
from batchline.services.capacity import CapacityUse, capacity_use
from batchline.settings import Settings

log = logging.getLogger("batchline.metrics")


# Once the database answered at the migrations' head, a scrape within this
# long trusts that (reading the migrations costs more than the scrape's queries);
# a query that fails sends the next scrape back to checking.
HEAD_CHECK_SECONDS = 30.0


class BatchlineCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._at_head_until = 0.0

    def describe(self) -> list[Any]:
        # Declared empty so registering does not run a scrape's queries.
        return []

    def collect(self) -> Iterator[Any]:
        # A scrape that cannot read the database answers 200 with
        # batchline_database_ready 0 and the fix in its help text, not HTTP 500.
        problem = None
        if time.monotonic() >= self._at_head_until:
            problem = database_problem(self._settings)
        families: list[Any] = []
        if problem is None:
            try:
                families = self._read()
                self._at_head_until = time.monotonic() + HEAD_CHECK_SECONDS
            except SQLAlchemyError:
                self._at_head_until = 0.0
                problem = database_problem(self._settings) or "the database failed a query"
        if problem is not None:
            log.warning("%s", problem)
        yield GaugeMetricFamily(
            "batchline_database_ready",
            "1: the database answers at the migrations' head"
            + ("" if problem is None else f"; 0 now: {problem}"),
            value=0 if problem else 1,
        )
        yield from families

    def _read(self) -> list[Any]:
        # An engine per scrape: scrapes are seconds apart, and nothing is left open.
        engine = make_engine(self._settings.database_url)
        try:
            reader = engine.execution_options(**{READ_ONLY: True})
            return list(self._collect(make_session_factory(reader)))
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
            yield _stage_seconds(metrics_queries.stage_seconds(session))
            yield CounterMetricFamily(
                "batchline_batch_errors",
                "Batches whose last submit or poll recorded an error",
                value=metrics_queries.batches_with_errors(session),
            )
            yield CounterMetricFamily(
                "batchline_cost_usd",
                "Spend at batch prices, USD",
                value=float(metrics_queries.total_cost(session)),
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


def _stage_seconds(seconds: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "batchline_stage_seconds_avg",
        "Mean seconds per batch spent in each stage",
        labels=["stage"],
    )
    for stage, value in seconds.items():
        family.add_metric([stage], value)
    return family


def registry_for(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BatchlineCollector(settings))
    return registry
