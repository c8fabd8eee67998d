"""No SQL outside the SQL adapter.

Every statement the product runs lives in `worker/adapters/` (the pipeline's in
`adapters/sql/`, one module per step), so a change of schema or of database has
one place to go. Read here as code, not by convention: outside the adapters a
module may hold a Session or an Engine and catch SQLAlchemy's errors, but may
not build a query (select, update, text, func, ...) nor run one on a session
or connection. Outside the rule: the models (table definitions), the
migrations (DDL), `database.py` (engine set-up) and the emulator, which stands
in for the API and keeps its own store.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "worker"
OUTSIDE_THE_RULE = ("adapters/", "emulator/", "database.py")
# Names whose import means a query is being built.
QUERY_BUILDERS = {
    "select",
    "update",
    "insert",
    "delete",
    "text",
    "func",
    "and_",
    "or_",
    "not_",
    "case",
    "cast",
    "literal",
    "literal_column",
    "exists",
    "any_",
    "tuple_",
    "bindparam",
}
# Methods that run SQL when called on a session or connection.
RUNNERS = {"execute", "scalar", "scalars", "query", "get", "merge", "add", "add_all", "delete"}
RECEIVERS = {"session", "conn", "connection", "s"}


def _product_modules() -> list[Path]:
    return sorted(
        path
        for path in WORKER.rglob("*.py")
        if not str(path.relative_to(WORKER)).startswith(OUTSIDE_THE_RULE)
    )


def sql_found(source: str) -> list[str]:
    """Each place in `source` that builds or runs SQL, as `line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
        if module.startswith("sqlalchemy"):
            assert isinstance(node, ast.ImportFrom)
            if module in ("sqlalchemy", "sqlalchemy.sql", "sqlalchemy.sql.expression"):
                built = [a.name for a in node.names if a.name in QUERY_BUILDERS]
                if built:
                    found.append(f"{node.lineno}: imports {', '.join(built)}")
            elif module.startswith(("sqlalchemy.dialects", "sqlalchemy.sql")):
                found.append(f"{node.lineno}: imports from {module}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in RUNNERS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in RECEIVERS
        ):
            found.append(f"{node.lineno}: {node.func.value.id}.{node.func.attr}(...)")
    return found


@pytest.mark.parametrize("path", _product_modules(), ids=lambda p: str(p.relative_to(WORKER)))
def test_sql__none_outside_the_adapters(path: Path) -> None:
    assert sql_found(path.read_text()) == [], f"SQL in {path.relative_to(WORKER)}"


def test_sql_found__sees_a_query_built_and_one_run() -> None:
    # The check itself, on code that breaks the rule both ways.
    source = (
        "from sqlalchemy import select, Engine\n"
        "def f(session):\n"
        "    return session.scalar(select(1))\n"
    )
    assert sql_found(source) == ["1: imports select", "3: session.scalar(...)"]
    assert sql_found("from sqlalchemy.orm import Session\nfrom sqlalchemy import Engine\n") == []
