"""Faults of the create path, as reusable pieces, and the accounting that judges them.

Each fault is a context manager (or a function) over a running emulator, so a
test, or the chaos run, can mix them:

- `creates_made_then_failed(emulator, n, status)`: the next n creates make
  their batch, then answer `status` (or drop the connection when None).
- `creates_failed_before(emulator, n, status)`: the next n creates answer
  `status` before anything is made.
- `foreign_batch(emulator, custom_ids)`: another client of the same API key
  (a plain script, another batchline deployment) makes a batch.
- `api_clock_behind(emulator_factory, seconds)`: an emulator whose clock (its
  `created_at` and its `Date` header) runs that far behind the workers'.
- `minus0000_dates(emulator)`: the `Date` header in RFC 5322's `-0000` zone.

`account(emulator, database_url)` checks what every such test checks at the
end, over SQL and the emulator's own records.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anthropic
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from sqlalchemy import text

from batchline.database import make_engine
from batchline.emulator import EmulatorServer

# The request id in any custom_id batchline made: named, or the older unnamed form.
_REQUEST_IN_CUSTOM_ID = re.compile(r"^bl(?:[a-z0-9]{1,16}_)?([0-9a-f]{32})-[0-9]{1,6}$")
FINAL_STATES = {"succeeded", "failed", "canceled", "expired"}


@contextmanager
def creates_made_then_failed(
    emulator: EmulatorServer, n: int, status: int | None = 500
) -> Iterator[None]:
    """The next n creates are performed, then answered `status` (None: no answer)."""
    admin = emulator.admin()
    admin.update_faults(lost_create_responses=n, lost_create_status=status)
    try:
        yield
    finally:
        admin.update_faults(lost_create_responses=0, lost_create_status=None)


@contextmanager
def creates_failed_before(emulator: EmulatorServer, n: int, status: int = 500) -> Iterator[None]:
    """The next n creates answer `status` before anything is made."""
    admin = emulator.admin()
    admin.update_faults(scripted_errors={"create": [status] * n})
    try:
        yield
    finally:
        admin.update_faults(scripted_errors={})


@contextmanager
def minus0000_dates(emulator: EmulatorServer) -> Iterator[None]:
    admin = emulator.admin()
    admin.update_faults(date_header_zone="-0000")
    try:
        yield
    finally:
        admin.update_faults(date_header_zone="GMT")


def api_clock_behind(
    emulator_factory: Callable[..., EmulatorServer], seconds: float, **options: Any
) -> EmulatorServer:
    """An emulator whose clock runs `seconds` behind this machine's (the workers')."""
    return emulator_factory(clock_offset_seconds=-seconds, **options)


def foreign_batch(
    emulator: EmulatorServer, custom_ids: Sequence[str], api_key: str = "sk-ant-test-acceptance"
) -> str:
    """Another client of the same API key makes a batch; returns its id."""
    params: MessageCreateParamsNonStreaming = {
        "model": "claude-test",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "x"}],
    }
    with anthropic.Anthropic(api_key=api_key, base_url=emulator.base_url, max_retries=0) as client:
        batch = client.messages.batches.create(
            requests=[{"custom_id": c, "params": params} for c in custom_ids]
        )
    return batch.id


def plain_custom_ids(n: int) -> list[str]:
    return [f"question-{i}" for i in range(n)]


def other_deployment_custom_ids(n: int, deployment: str = "otherdeploy") -> list[str]:
    return [f"bl{deployment}_{i:032x}-1" for i in range(1, n + 1)]


def unnamed_batchline_custom_ids(n: int) -> list[str]:
    """The shape batchline used before deployments had names."""
    return [f"bl{i + 7:032x}-1" for i in range(n)]


@dataclass
class CreateAccount:
    remote_batches: int = 0
    creates: int = 0
    unknown_remote: list[str] = field(default_factory=list)
    # Requests whose custom_ids are in more than one remote batch (paid more than once).
    sent_twice: list[str] = field(default_factory=list)
    # Requests charged more attempts than remote batches they were sent in.
    charged_unsent: list[str] = field(default_factory=list)
    # Requests that ended failed without ever being in a remote batch.
    failed_unsent: list[str] = field(default_factory=list)
    not_final: int = 0
    states: Counter[str] = field(default_factory=Counter)
    foreign_batches: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [
            f"{name}: {value[:5]}{'...' if len(value) > 5 else ''} ({len(value)})"
            for name, value in (
                ("remote batches SQL does not know", self.unknown_remote),
                ("requests sent twice", self.sent_twice),
                ("requests charged an attempt they did not have", self.charged_unsent),
                ("requests failed without being sent", self.failed_unsent),
            )
            if value
        ]


def account(emulator: EmulatorServer, database_url: str) -> CreateAccount:
    records = emulator.admin().records(custom_ids=True)
    sent: Counter[str] = Counter()
    for batch in records.batches:
        for custom_id in batch.custom_ids or ():
            match = _REQUEST_IN_CUSTOM_ID.match(custom_id)
            if match is not None:
                sent[match.group(1)] += 1
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            known = {
                remote_id: error
                for remote_id, error in conn.execute(
                    text("SELECT remote_id, error FROM batches WHERE remote_id IS NOT NULL")
                )
            }
            requests = list(conn.execute(text("SELECT id, state, charged_attempts FROM requests")))
    finally:
        engine.dispose()
    out = CreateAccount(remote_batches=len(records.batches), creates=records.creates)
    out.unknown_remote = [b.id for b in records.batches if b.id not in known]
    out.foreign_batches = [
        remote_id for remote_id, error in known.items() if (error or "").startswith("foreign")
    ]
    for request_id, state, charged in requests:
        out.states[state] += 1
        out.not_final += state not in FINAL_STATES
        if sent[request_id] > 1:
            out.sent_twice.append(request_id)
        if charged > sent[request_id]:
            out.charged_unsent.append(request_id)
        if state == "failed" and sent[request_id] == 0:
            out.failed_unsent.append(request_id)
    return out
