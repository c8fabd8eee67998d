"""The chaos run's plan: its scale, the service's settings and the emulator's faults.

The scheduled faults themselves are in `harness/chaos_faults.py`; the counting
that judges the run is in `harness/chaos_accounting.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchline.emulator import FaultConfig

# The service's clock runs this far ahead of the API's (the emulator's `Date`
# and `created_at` are behind the workers' clock for the whole run).
API_CLOCK_BEHIND_SECONDS = 600.0

SERVICE_SETTINGS = {
    "BATCHLINE_MAX_WAIT_SECONDS": "1",
    "BATCHLINE_POLL_INTERVAL_SECONDS": "1",
    "BATCHLINE_INTAKE_INTERVAL_SECONDS": "0.5",
    "BATCHLINE_RECONCILE_INTERVAL_SECONDS": "2",
    "BATCHLINE_CREATE_TIMEOUT_SECONDS": "5",
    "BATCHLINE_CLOCK_SKEW_SECONDS": "5",
    "BATCHLINE_INTAKE_RECLAIM_SECONDS": "5",
    "BATCHLINE_INGEST_LEASE_SECONDS": "10",
    "BATCHLINE_MAX_ATTEMPTS": "5",
    "BATCHLINE_PRIME_MIN_GROUP": "0",
    # Its own custom_id namespace: the foreign batches below use another one.
    "BATCHLINE_DEPLOYMENT": "chaos",
    # Far above a real line, far below the endless line the relay sends.
    "BATCHLINE_MAX_RESULT_LINE_BYTES": str(1 << 20),
}

# Faults on every endpoint; one create made and never answered; some requests
# errored or expired. A share of creates answer 500 before anything is made.
CHAOS_FAULTS = FaultConfig(
    seed=8,
    http_errors={
        "create": {429: 0.1, 529: 0.05, 500: 0.05},
        "retrieve": {500: 0.05, 429: 0.05},
        "list": {529: 0.1},
        "results": {500: 0.1},
        "*": {500: 0.05},
    },
    lost_create_responses=1,
    errored_rate=0.05,
    # Not billing/authentication/permission errors: those pause submission until
    # a person acts (by design), which a chaos run cannot do.
    error_types=(
        "api_error",
        "overloaded_error",
        "invalid_request_error",
        "rate_limit_error",
        "timeout_error",
    ),
    expired_rate=0.03,
    processing_seconds=1.0,
)
QUIET_FAULTS = FaultConfig(processing_seconds=1.0)


@dataclass(frozen=True)
class ChaosPlan:
    requests: int = 800
    fault_seconds: float = 30.0
    settle_seconds: float = 240.0
    workers: int = 2
    concurrency: int = 4
    kills: int = 3
    max_batch_requests: int = 20
    # Creates made by the API and answered 500, all at once and of one size
    # (a backlog of lost_creates * max_batch_requests enqueued in one go).
    lost_creates: int = 20
    outage_seconds: float = 5.0
    # How long Redis stays at maxmemory (writes refused) before the limit lifts.
    full_redis_seconds: float = 8.0
    # Headroom left above Redis's used memory when maxmemory is set.
    full_redis_headroom: int = 1 << 20
    seed: int = 8

    def __post_init__(self) -> None:
        if self.lost_creates * self.max_batch_requests > self.requests:
            raise ValueError("requests must cover lost_creates full batches")

    @property
    def sweep_seconds(self) -> float:
        """The longest a request waits for one beat-driven pass to move it on.

        For most work that is one beat interval; for a create whose answer was
        lost it is the create timeout plus the clock-skew allowance (only then
        may the reconciler judge it) plus one reconcile interval."""
        setting = {
            name: float(SERVICE_SETTINGS[f"BATCHLINE_{name}_SECONDS"])
            for name in (
                "POLL_INTERVAL",
                "INTAKE_INTERVAL",
                "MAX_WAIT",
                "RECONCILE_INTERVAL",
                "CREATE_TIMEOUT",
                "CLOCK_SKEW",
            )
        }
        lost_create = setting["CREATE_TIMEOUT"] + setting["CLOCK_SKEW"]
        return max(
            setting["POLL_INTERVAL"],
            setting["INTAKE_INTERVAL"],
            setting["MAX_WAIT"],
            lost_create + setting["RECONCILE_INTERVAL"],
        )

    @property
    def recovery_bound_seconds(self) -> float:
        """Two sweeps plus one ingest lease: every request final within it once drained."""
        return 2 * self.sweep_seconds + float(SERVICE_SETTINGS["BATCHLINE_INGEST_LEASE_SECONDS"])


def request_params(i: int, body: str = "") -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": f"chaos request {i}: say hello {body}"}],
    }
