"""How each request of a batch will turn out, fixed when the batch is created.

A request's fate comes from, in order: its params (invalid → errored
`invalid_request_error`), markers in its text, then the fault shares of the
`FaultConfig` live at creation. Each request also gets a deterministic moment
within the processing window at which it is done; a cancel or the 24 h expiry
cuts off the requests not done by then. Fixing all of this at creation keeps a
batch's results identical however often and whenever they are downloaded.

Markers, written anywhere in a request's params (a message text, a system
prompt, `metadata.user_id`):
  [[emulator:errored]]             errored, next error type in the cycle
  [[emulator:errored:<type>]]      errored with that type (e.g. overloaded_error)
  [[emulator:expired]]             expired
  [[emulator:stuck]]               never finishes: the batch runs to its 24 h
                                   expiry and this request comes back expired
  [[emulator:succeeded]]           exempt from the errored/expired shares
  [[emulator:long]] / [[emulator:long:<chars>]]
                                   reply text padded to that many characters
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import RESULT_ERROR_TYPES
from .faults import FaultConfig
from .validation import NON_BETA, Surface, params_error

MARKER = re.compile(rb"\[\[emulator:([a-z_]+)(?::([A-Za-z0-9_]+))?\]\]")
_MARKER_PREFIX = b"[[emulator:"
FORCEABLE_ERRORS = (*RESULT_ERROR_TYPES, "not_found_error")
ERROR_MESSAGES = {
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
    "invalid_request_error": "Invalid request",
    "rate_limit_error": "Number of request tokens has exceeded your rate limit",
    "timeout_error": "Request timed out",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource",
    "billing_error": "Your credit balance is too low to access the Anthropic API",
    "not_found_error": "Not found",
}


class Plan(NamedTuple):
    outcome: str  # "succeeded" | "errored" | "expired"
    error_type: str | None
    error_message: str | None
    done_at: float | None  # None: never done on its own
    long_chars: int


@dataclass
class _Forced:
    outcome: str | None = None
    error_type: str | None = None
    stuck: bool = False
    long_chars: int = 0
    problem: str | None = None


class Planner:
    """Plans the requests of one batch, in request order."""

    def __init__(
        self,
        faults: FaultConfig,
        *,
        batch_id: str,
        created_at: float,
        processing_seconds: float,
        surface: Surface = NON_BETA,
    ) -> None:
        self._faults = faults
        self._surface = surface
        self._batch = batch_id.encode()
        self._seed = str(faults.seed).encode()
        self._created_at = created_at
        self._processing = processing_seconds
        self._errored = 0

    def plan(self, custom_id: str, params: dict[str, Any], raw: bytes) -> Plan:
        digest = hashlib.blake2b(
            b"\x00".join((self._seed, self._batch, custom_id.encode())), digest_size=24
        ).digest()
        done_fraction = (int.from_bytes(digest[:8], "big") + 1) / 2**64
        done_at = self._created_at + done_fraction * self._processing
        problem = params_error(params, self._surface)
        if problem is not None:
            return Plan("errored", "invalid_request_error", problem, done_at, 0)
        forced = _read_markers(raw) if _MARKER_PREFIX in raw else _Forced()
        if forced.problem is not None:
            return Plan("errored", "invalid_request_error", forced.problem, done_at, 0)
        long_chars = forced.long_chars or self._long_chars(digest)
        done = None if forced.stuck else done_at
        if forced.outcome == "errored":
            return self._errored_plan(forced.error_type, done, long_chars)
        if forced.outcome is not None:
            return Plan(forced.outcome, None, None, done, long_chars)
        draw = int.from_bytes(digest[8:16], "big") / 2**64
        if draw < self._faults.errored_rate:
            return self._errored_plan(None, done, long_chars)
        if draw < self._faults.errored_rate + self._faults.expired_rate:
            return Plan("expired", None, None, done, long_chars)
        return Plan("succeeded", None, None, done, long_chars)

    def _errored_plan(self, error_type: str | None, done: float | None, long_chars: int) -> Plan:
        if error_type is None:
            types = self._faults.error_types
            error_type = types[self._errored % len(types)]
            self._errored += 1
        message = f"{ERROR_MESSAGES[error_type]} (injected by the emulator)"
        return Plan("errored", error_type, message, done, long_chars)

    def _long_chars(self, digest: bytes) -> int:
        draw = int.from_bytes(digest[16:24], "big") / 2**64
        return self._faults.long_reply_chars if draw < self._faults.long_reply_rate else 0


def _read_markers(raw: bytes) -> _Forced:
    forced = _Forced()
    for match in MARKER.finditer(raw):
        name, arg = match.group(1).decode(), (match.group(2) or b"").decode()
        _apply_marker(forced, name, arg)
    return forced


def _apply_marker(forced: _Forced, name: str, arg: str) -> None:
    if name == "errored" and (not arg or arg in FORCEABLE_ERRORS):
        forced.outcome, forced.error_type = "errored", arg or None
    elif name in ("expired", "succeeded") and not arg:
        forced.outcome = name
    elif name == "stuck" and not arg:
        forced.stuck = True
    elif name == "long" and (not arg or arg.isdigit()):
        forced.long_chars = int(arg) if arg else 300_000
    else:
        suffix = f":{arg}" if arg else ""
        forced.problem = f"unknown emulator marker [[emulator:{name}{suffix}]]"
