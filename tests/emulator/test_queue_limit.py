"""The per-organisation limit on requests waiting in batches: the API's 429 over it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import anthropic
import pytest

from batchline.emulator import EmulatorServer
from tests.emulator.helpers import end_processing, questions
from tests.emulator.test_cli import _start
from tests.emulator_fixtures import make_client

pytestmark = pytest.mark.emulator


def test_queue_limit__a_create_over_the_limit_is_a_429_and_creates_nothing(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(max_queued_requests=5)
    with make_client(emulator, max_retries=0) as client:
        first = client.messages.batches.create(requests=questions(3, "a"))

        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.batches.create(requests=questions(3, "b"))
        fits = client.messages.batches.create(requests=questions(2, "c"))

        end_processing(emulator)
        after = client.messages.batches.create(requests=questions(5, "d"))

    error = caught.value
    assert error.status_code == 429
    assert error.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "3 waiting + 3 new > 5" in error.message
    assert int(error.response.headers["retry-after"]) >= 1
    ids = [record.id for record in emulator.records().batches]
    assert ids == [first.id, fits.id, after.id]


def test_queue_limit__none_by_default(emulator: EmulatorServer) -> None:
    with make_client(emulator, max_retries=0) as client:
        for prefix in "abc":
            client.messages.batches.create(requests=questions(50, prefix))

    assert emulator.records().creates == 3


def test_queue_limit__set_by_the_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHLINE_EMULATOR_MAX_QUEUED_REQUESTS", "2")
    process, base_url = _start("--processing-seconds", "600")
    try:
        with anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0) as client:
            client.messages.batches.create(requests=questions(2))
            with pytest.raises(anthropic.RateLimitError):
                client.messages.batches.create(requests=questions(1, "x"))
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.communicate(timeout=15)


def test_queue_limit__refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="max_queued_requests"):
        EmulatorServer(max_queued_requests=0)
