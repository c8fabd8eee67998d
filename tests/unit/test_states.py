"""The state table: derived from the named moves, and what its derived sets say."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from batchline.domain.states import (
    BATCH_MOVES,
    BATCH_TRANSITIONS,
    REQUEST_MOVES,
    REQUEST_TRANSITIONS,
    TERMINAL_BATCH_STATES,
    TERMINAL_REQUEST_STATES,
    BatchState,
    RequestMoves,
    RequestState,
    batch_sources,
    batch_states_leading_to,
    can_move_batch,
    can_move_request,
    request_move,
)

PRODUCT = Path(__file__).resolve().parents[2] / "worker"


def test_states__tables_are_exactly_the_named_moves() -> None:
    assert {(s, t) for s, ts in BATCH_TRANSITIONS.items() for t in ts} == {
        (m.source, m.target) for m in BATCH_MOVES
    }
    assert {(s, t) for s, ts in REQUEST_TRANSITIONS.items() for t in ts} == {
        (m.source, m.target) for m in REQUEST_MOVES
    }
    assert len(set(REQUEST_MOVES)) == len(REQUEST_MOVES)  # no move named twice
    assert all(can_move_batch(m.source, m.target) for m in BATCH_MOVES)
    assert not can_move_batch(BatchState.PREPARED, BatchState.RELEASED)


def test_states__terminal_states_have_no_way_out_but_an_operators_retry() -> None:
    for state in TERMINAL_BATCH_STATES:
        assert BATCH_TRANSITIONS[state] == frozenset()
    by_hand = {RequestMoves.FAILED_REQUEUED, RequestMoves.EXPIRED_REQUEUED}
    for move in REQUEST_MOVES:
        if move.source in TERMINAL_REQUEST_STATES:
            assert move in by_hand
    assert not can_move_request(RequestState.SUCCEEDED, RequestState.QUEUED)


def test_states__request_move__refuses_a_move_not_in_the_table() -> None:
    assert request_move(RequestState.IN_BATCH, RequestState.EXPIRED) == RequestMoves.EXPIRED
    with pytest.raises(ValueError, match="may not move"):
        request_move(RequestState.QUEUED, RequestState.FAILED)


def test_states__derived_sets() -> None:
    assert batch_sources(BatchState.SUBMITTED) == {BatchState.SUBMITTING, BatchState.UNKNOWN}
    assert batch_states_leading_to(BatchState.ENDED) == {
        BatchState.PREPARED,
        BatchState.SUBMITTING,
        BatchState.UNKNOWN,
        BatchState.SUBMITTED,
    }


def _state_writes(path: Path) -> list[int]:
    """Lines where `path` sets a `state` column in an UPDATE's values(...)."""
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "values"
        and any(k.arg == "state" for k in node.keywords)
    ]


def test_states__only_the_guarded_move_helper_writes_a_state() -> None:
    # The cache primer's own "priming"/"ready" column is not one of these machines.
    # Nor is a fallback's own pending/calling/done/failed column.
    exempt = {"adapters/sql/rows.py", "adapters/priming.py", "adapters/sql/fallback.py"}
    writers = {
        path.relative_to(PRODUCT).as_posix(): lines
        for path in sorted(PRODUCT.rglob("*.py"))
        if (lines := _state_writes(path)) and path.relative_to(PRODUCT).as_posix() not in exempt
    }
    assert writers == {}
