"""Pytest plugin: a running Message Batches emulator and SDK clients pointed at it.

Registered by tests/conftest.py (`pytest_plugins = ["tests.emulator_fixtures"]`).

    def test_something(emulator, emulator_client):
        batch = emulator_client.messages.batches.create(requests=[...])
        emulator.clock.advance(5)          # emulated time: the batch has ended

The fixture's emulator processes a batch in `FIXTURE_PROCESSING_SECONDS`
emulated seconds; `emulator_factory(**kwargs)` starts one with other options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

from batchline.emulator import EmulatorAdmin, EmulatorServer

FIXTURE_PROCESSING_SECONDS = 0.2
TEST_API_KEY = "test-key"


def make_client(server: EmulatorServer, **kwargs: Any) -> anthropic.Anthropic:
    """A sync SDK client on the emulator, strict about response shapes."""
    kwargs.setdefault("api_key", TEST_API_KEY)
    kwargs.setdefault("_strict_response_validation", True)
    return anthropic.Anthropic(base_url=server.base_url, **kwargs)


def make_async_client(server: EmulatorServer, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An async SDK client on the emulator, strict about response shapes."""
    kwargs.setdefault("api_key", TEST_API_KEY)
    kwargs.setdefault("_strict_response_validation", True)
    return anthropic.AsyncAnthropic(base_url=server.base_url, **kwargs)


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorServer]]:
    """Starts emulators with the given `EmulatorServer` options; stops them all after."""
    started: list[EmulatorServer] = []

    def start(**kwargs: Any) -> EmulatorServer:
        kwargs.setdefault("processing_seconds", FIXTURE_PROCESSING_SECONDS)
        server = EmulatorServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    """A started emulator on 127.0.0.1, a free port, any API key accepted."""
    return emulator_factory()


@pytest.fixture
def emulator_admin(emulator: EmulatorServer) -> EmulatorAdmin:
    return emulator.admin()


@pytest.fixture
def emulator_client(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with make_client(emulator) as client:
        yield client
