"""Every state move the pipeline makes is in the domain's table, and every move
in the table is one the pipeline makes.

The moves are recorded at the SQL adapter's one guarded-move helper (see
tests/state_moves.py) while the pipeline's own tests run: the real services
over real SQL and Redis (tests/integration/test_pipeline*.py) and the
Hypothesis state machine (tests/unit/test_state_machine.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from batchline.domain.states import BATCH_MOVES, REQUEST_MOVES, Move
from tests.state_moves import ALLOWED, RecordedMoves

pytestmark = pytest.mark.integration


def _named(moves: Iterable[Move[Any]]) -> str:
    return ", ".join(sorted(f"{m.source} -> {m.target}" for m in moves))


def test_states__the_pipeline_makes_only_allowed_moves(recorded_moves: RecordedMoves) -> None:
    assert _named(recorded_moves.made - ALLOWED) == ""


def test_states__the_pipeline_makes_every_allowed_move(recorded_moves: RecordedMoves) -> None:
    everything: tuple[Move[Any], ...] = (*BATCH_MOVES, *REQUEST_MOVES)
    assert _named(m for m in everything if m not in recorded_moves.made) == ""
