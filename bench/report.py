"""Figures, their targets, and the table and JSON they are reported as."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet: `value >= bound` (at_least) or `value <= bound`."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.bound if self.at_least else value <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


def at_least(bound: float) -> Target:
    return Target(bound, True)


def at_most(bound: float) -> Target:
    return Target(bound, False)


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: Target | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": None if math.isnan(self.value) else round(self.value, 6),
            "unit": self.unit,
            "target": None if self.target is None else str(self.target),
            "met": self.met,
            "note": self.note,
        }


Emit = Callable[[Figure], None]


def _value(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_row(figure: Figure) -> str:
    target = "" if figure.target is None else str(figure.target)
    verdict = {None: "", True: "met", False: "MISSED"}[figure.met]
    return (
        f"{figure.name:<46} {_value(figure.value):>12} {figure.unit:<10} "
        f"{target:<10} {verdict:<6} {figure.note}"
    ).rstrip()


def format_table(figures: Iterable[Figure]) -> str:
    header = f"{'figure':<46} {'value':>12} {'unit':<10} {'target':<10} {'':<6} note"
    lines = [header, "-" * len(header)]
    lines.extend(format_row(f) for f in figures)
    return "\n".join(lines)


def write_json(path: Path, figures: Iterable[Figure], meta: dict[str, object]) -> None:
    doc = {"meta": meta, "results": [f.as_json() for f in figures]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
