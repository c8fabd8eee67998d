"""Fault injection: what to break, and the runtime state that decides when.

`FaultConfig` is a frozen value (start-up option, JSON on the admin endpoint);
`FaultState` holds the one that is live plus the counters and the seeded random
stream that consume it, so the same seed and the same request sequence give
the same faults.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import RESULT_ERROR_TYPES, TYPE_BY_STATUS

ENDPOINTS: tuple[str, ...] = (
    *("create", "retrieve", "list", "cancel", "delete", "results"),
    *("messages", "count_tokens"),  # the synchronous Messages API
)
ANY_ENDPOINT = "*"


@dataclass(frozen=True)
class FaultConfig:
    """Every fault the emulator can inject; the defaults inject none.

    HTTP faults (decided per API call, before it has any effect):
      http_errors: endpoint name (see `ENDPOINTS`, or "*" for the rest) to
        {HTTP status: share of calls}, e.g. {"create": {429: 0.5}}.
      scripted_errors: endpoint name to statuses answered to its next calls,
        in order, before `http_errors` is consulted, e.g. {"create": [429]}.
      retry_after_seconds: sent as `retry-after-ms` / `retry-after` on 429s.
      lost_create_responses: the next N creates are performed, then the
        connection is closed without an answer.
      lost_create_status: answer those N creates with this HTTP status (e.g.
        500) instead of closing the connection: made, but answered as failed.
      date_header_zone: "GMT", or "-0000" (RFC 5322's "UTC, zone unknown").
    Result stream faults:
      results_cut_after_bytes: close the connection after this many body bytes.
      results_crlf: end result lines with CRLF.
      results_split_chunks: write the body in small random pieces (1 to
        `results_split_max_bytes`), flushing each and splitting every CRLF.
      results_chunk_delay_seconds: sleep between written pieces (slow stream).
    Batch outcome faults (fixed for a batch when it is created):
      processing_seconds: overrides the server's processing time.
      errored_rate / expired_rate: share of requests that come back errored
        (cycling through `error_types`) or expired.
      long_reply_rate / long_reply_chars: share of replies padded to that size.
    """

    seed: int = 0
    http_errors: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    scripted_errors: Mapping[str, Sequence[int]] = field(default_factory=dict)
    retry_after_seconds: float = 1.0
    lost_create_responses: int = 0
    lost_create_status: int | None = None
    date_header_zone: str = "GMT"
    results_cut_after_bytes: int | None = None
    results_crlf: bool = False
    results_split_chunks: bool = False
    results_split_max_bytes: int = 17
    results_chunk_delay_seconds: float = 0.0
    processing_seconds: float | None = None
    errored_rate: float = 0.0
    error_types: tuple[str, ...] = RESULT_ERROR_TYPES
    expired_rate: float = 0.0
    long_reply_rate: float = 0.0
    long_reply_chars: int = 300_000

    def __post_init__(self) -> None:
        _check_endpoints(self.http_errors, self.scripted_errors)
        _check_statuses(self.http_errors, self.scripted_errors)
        for name in ("errored_rate", "expired_rate", "long_reply_rate"):
            _check_share(name, getattr(self, name))
        if self.errored_rate + self.expired_rate > 1:
            raise ValueError("errored_rate + expired_rate must not exceed 1")
        if not self.error_types or set(self.error_types) - set(RESULT_ERROR_TYPES):
            raise ValueError(f"error_types must be a non-empty subset of {RESULT_ERROR_TYPES}")
        if self.lost_create_responses < 0 or self.results_split_max_bytes < 1:
            raise ValueError("lost_create_responses must be >= 0, results_split_max_bytes >= 1")
        if self.lost_create_status is not None and self.lost_create_status not in TYPE_BY_STATUS:
            raise ValueError(f"lost_create_status must be one of {sorted(TYPE_BY_STATUS)}")
        if self.date_header_zone not in ("GMT", "-0000"):
            raise ValueError('date_header_zone must be "GMT" or "-0000"')
        if self.results_cut_after_bytes is not None and self.results_cut_after_bytes < 0:
            raise ValueError("results_cut_after_bytes must be >= 0")

    @classmethod
    def uniform(cls, rate: float, *, seed: int = 0) -> FaultConfig:
        """`rate` of every API call fails, split evenly over 429, 500 and 529."""
        _check_share("rate", rate)
        share = rate / 3
        return cls(seed=seed, http_errors={ANY_ENDPOINT: {429: share, 500: share, 529: share}})

    def to_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["http_errors"] = {
            endpoint: {str(status): share for status, share in shares.items()}
            for endpoint, shares in self.http_errors.items()
        }
        data["scripted_errors"] = {k: list(v) for k, v in self.scripted_errors.items()}
        data["error_types"] = list(self.error_types)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Inverse of `to_dict`; missing keys take defaults, unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values = dict(data)
        try:
            if "http_errors" in values:
                values["http_errors"] = {
                    str(endpoint): {int(status): float(share) for status, share in shares.items()}
                    for endpoint, shares in values["http_errors"].items()
                }
            if "scripted_errors" in values:
                values["scripted_errors"] = {
                    str(k): [int(s) for s in v] for k, v in values["scripted_errors"].items()
                }
            if "error_types" in values:
                values["error_types"] = tuple(str(t) for t in values["error_types"])
            return cls(**values)
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"malformed fault settings: {exc}") from exc


def _check_share(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1")


def _check_endpoints(*tables: Mapping[str, object]) -> None:
    allowed = {*ENDPOINTS, ANY_ENDPOINT}
    for table in tables:
        wrong = sorted(set(table) - allowed)
        if wrong:
            raise ValueError(f"unknown endpoint(s) {wrong}; use {sorted(allowed)}")


def _check_statuses(
    http_errors: Mapping[str, Mapping[int, float]], scripted: Mapping[str, Sequence[int]]
) -> None:
    statuses = {s for shares in http_errors.values() for s in shares}
    statuses |= {s for queue in scripted.values() for s in queue}
    wrong = sorted(statuses - set(TYPE_BY_STATUS))
    if wrong:
        raise ValueError(f"cannot inject HTTP status(es) {wrong}; use {sorted(TYPE_BY_STATUS)}")
    for shares in http_errors.values():
        for share in shares.values():
            _check_share("an http_errors share", share)
        if sum(shares.values()) > 1:
            raise ValueError("the http_errors shares of one endpoint must not exceed 1")


class FaultState:
    """The live `FaultConfig` and what consumes it; safe to share between threads."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.lost_create_total = 0
        self.replace(config or FaultConfig())

    def replace(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)
            # A separate stream, so downloads do not shift which calls get HTTP errors.
            self._split_random = random.Random(config.seed + 1)
            self._scripted = {k: deque(v) for k, v in config.scripted_errors.items()}
            self._lost_left = config.lost_create_responses

    @property
    def config(self) -> FaultConfig:
        """The live config, its one-shot parts showing what is left of them."""
        with self._lock:
            scripted = {k: list(q) for k, q in self._scripted.items() if q}
            return dataclasses.replace(
                self._config, scripted_errors=scripted, lost_create_responses=self._lost_left
            )

    def http_error(self, endpoint: str) -> int | None:
        """The status to answer this call with instead of serving it, if any."""
        with self._lock:
            for key in (endpoint, ANY_ENDPOINT):
                queue = self._scripted.get(key)
                if queue:
                    return queue.popleft()
            shares = self._config.http_errors.get(endpoint)
            if shares is None:
                shares = self._config.http_errors.get(ANY_ENDPOINT, {})
            if not shares:
                return None
            draw = self._random.random()
            for status, share in sorted(shares.items()):
                if draw < share:
                    return status
                draw -= share
            return None

    def take_lost_create(self) -> bool:
        """Whether this create's answer is to be lost (counts it if so)."""
        with self._lock:
            if self._lost_left <= 0:
                return False
            self._lost_left -= 1
            self.lost_create_total += 1
            return True

    def split_sizes(self) -> random.Random:
        """A random stream for chunk sizes, seeded from the live config."""
        with self._lock:
            return random.Random(self._split_random.random())
