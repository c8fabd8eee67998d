"""A pytest plugin recording every state move the product makes, at its one door.

Every change of a batch's or request's state goes through the SQL adapter's
`rows.guarded_move`. This plugin wraps that helper once for the session, in
every module that holds it, and notes each move that changed at least one row:

- after every test, each move it made must be one the domain table allows;
- the moves made by the pipeline's own tests (`RECORDING_SOURCES`) are kept,
  and `recorded_moves` hands them to the test that checks every allowed move
  was made; a test using it runs last in the session, after the sources, and
  skips unless all of them were collected. Under pytest-xdist the sources and
  the checks are one unit of work, run by one worker in that order (the
  scheduler below), so the moves it records are all of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from batchline.adapters.sql import rows
from batchline.domain.states import BATCH_MOVES, REQUEST_MOVES, Move

RECORDING_SOURCES = (
    "tests/integration/test_pipeline.py",
    "tests/integration/test_pipeline_moves.py",
    "tests/integration/test_pipeline_on_emulator.py",
    "tests/integration/test_fallback.py",
    "tests/unit/test_state_machine.py",
)
CHECKS_MODULE = "tests/integration/test_state_moves.py"
ALLOWED: frozenset[Move[Any]] = frozenset((*BATCH_MOVES, *REQUEST_MOVES))
_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RecordedMoves:
    """What the pipeline's own tests moved, and which of those tests ran."""

    made: set[Move[Any]] = field(default_factory=set)
    sources_collected: set[str] = field(default_factory=set)
    sources_failed: int = 0


_RECORD = RecordedMoves()
_current: list[Move[Any]] | None = None


def _recording(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded_move(session: Any, move: Move[Any], *where: Any, **kwargs: Any) -> Any:
        moved = original(session, move, *where, **kwargs)
        if moved and _current is not None:
            _current.append(move)
        return moved

    guarded_move.__wrapped__ = original  # type: ignore[attr-defined]
    return guarded_move


def _install() -> None:
    """Wrap the helper where it lives and wherever it was imported by name; a
    module imported later takes the wrapper from `rows` itself."""
    original = rows.guarded_move
    if hasattr(original, "__wrapped__"):
        return
    wrapper = _recording(original)
    for module in list(sys.modules.values()):
        if module.__name__.startswith("batchline") and (
            getattr(module, "guarded_move", None) is original
        ):
            module.guarded_move = wrapper  # type: ignore[attr-defined]


def _source_of(item: pytest.Item) -> str | None:
    path = Path(str(item.path)).resolve()
    relative = path.relative_to(_ROOT).as_posix() if path.is_relative_to(_ROOT) else ""
    return relative if relative in RECORDING_SOURCES else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    checks = [item for item in items if "recorded_moves" in getattr(item, "fixturenames", ())]
    strays = sorted({str(item.path) for item in checks} - {str(_ROOT / CHECKS_MODULE)})
    if strays:  # the xdist scheduler below keeps only this module with the sources
        raise pytest.UsageError(f"recorded_moves is for {CHECKS_MODULE} only, not {strays}")
    for item in checks:
        items.remove(item)
    items.extend(checks)
    for item in items:
        source = _source_of(item)
        if source is not None:
            _RECORD.sources_collected.add(source)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    global _current
    _install()
    made: list[Move[Any]] = []
    _current = made
    try:
        yield
    finally:
        _current = None
        if _source_of(item) is not None:
            _RECORD.made.update(made)
    illegal = sorted({f"{m.source} -> {m.target}" for m in made if m not in ALLOWED})
    if illegal:
        pytest.fail(f"moves the state table does not allow: {illegal}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # A report, not an exception: a unittest-style case (the Hypothesis machine)
    # records its failure without raising through pytest_runtest_call.
    if report.failed and report.location[0] in RECORDING_SOURCES:
        _RECORD.sources_failed += 1


@pytest.fixture
def recorded_moves() -> RecordedMoves:
    """The moves the pipeline's tests made; skips unless all of them ran and passed."""
    missing = sorted(set(RECORDING_SOURCES) - _RECORD.sources_collected)
    if missing:
        pytest.skip(f"run together with {', '.join(missing)}")
    if _RECORD.sources_failed:
        pytest.skip("some of the pipeline's tests failed: the moves they make are incomplete")
    return _RECORD


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, but the recording sources and the checks go to one
    worker as one unit (the largest, so it is handed out first); every other test
    is scheduled on its own. (xdist's `loadgroup` cannot do this under pytest 9:
    it renames nodes through an attribute pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    together = {*RECORDING_SOURCES, CHECKS_MODULE}

    class StateMovesTogether(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            return "state moves" if nodeid.split("::", 1)[0] in together else nodeid

    return StateMovesTogether(config, log)
