"""Loading the price table: BATCHLINE_PRICES_FILE, else the one shipped here."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from batchline.domain.cost import PriceTable

SHIPPED = Path(__file__).resolve().parent / "config" / "prices.toml"


class PricesError(ValueError):
    """The price file cannot be read; the message names the file and the fault."""


def load_prices(path: Path | None = None) -> PriceTable:
    from batchline.settings import Settings

    chosen = path or Path(Settings.from_env().prices_file or SHIPPED)
    return _load(chosen)


def prices_for(prices_file: str | None) -> PriceTable:
    """The price table a settings object names (BATCHLINE_PRICES_FILE, else the
    shipped one), without reading the environment again as `load_prices()` does
    (a pydantic-settings parse, about 20 ms: a dashboard page needed three)."""
    return _load(Path(prices_file) if prices_file else SHIPPED)


@lru_cache(maxsize=8)
def _load(path: Path) -> PriceTable:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        return PriceTable.from_mapping(doc)
    except (OSError, tomllib.TOMLDecodeError, KeyError, ArithmeticError, TypeError) as exc:
        raise PricesError(f"price file {path}: {exc}") from None
