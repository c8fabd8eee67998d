"""Cost arithmetic: tokens to USD at batch prices, and worst-case estimates.

Prices are per million tokens at synchronous rates; a batch result costs
`batch_discount` of that for every token kind, cache writes and reads being
priced as multiples of the input price. Decimal throughout: money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MILLION = Decimal(1_000_000)
# Rough English/code average used by estimates before a request is run.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class ModelPrice:
    input: Decimal
    output: Decimal


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass(frozen=True)
class PriceTable:
    models: Mapping[str, ModelPrice] = field(default_factory=dict)
    batch_discount: Decimal = Decimal("0.5")
    write_5m: Decimal = Decimal("1.25")
    write_1h: Decimal = Decimal("2")
    read: Decimal = Decimal("0.1")

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> PriceTable:
        multipliers = doc.get("cache_multipliers", {})
        models = {
            name: ModelPrice(Decimal(str(p["input"])), Decimal(str(p["output"])))
            for name, p in doc.get("models", {}).items()
        }
        return cls(
            models=models,
            batch_discount=Decimal(str(doc.get("batch_discount", "0.5"))),
            write_5m=Decimal(str(multipliers.get("write_5m", "1.25"))),
            write_1h=Decimal(str(multipliers.get("write_1h", "2"))),
            read=Decimal(str(multipliers.get("read", "0.1"))),
        )

    def price_of(self, model: str) -> ModelPrice | None:
        """The exact model, else the longest listed name it starts with (dated ids)."""
        if model in self.models:
            return self.models[model]
        matches = [name for name in self.models if model.startswith(name)]
        return self.models[max(matches, key=len)] if matches else None

    def token_cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        write_5m: int,
        write_1h: int,
        read: int,
    ) -> Decimal | None:
        """`batch_cost` from plain counts, with no Usage to build: ingestion's hot path."""
        full = self._full_price(model, input_tokens, output_tokens, write_5m, write_1h, read)
        return None if full is None else full * self.batch_discount

    def synchronous_cost(self, model: str, usage: Usage) -> Decimal | None:
        return self._full_price(
            model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_write_5m_tokens,
            usage.cache_write_1h_tokens,
            usage.cache_read_tokens,
        )

    def _full_price(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        write_5m: int,
        write_1h: int,
        read: int,
    ) -> Decimal | None:
        price = self.price_of(model)
        if price is None:
            return None
        weighted: Decimal | int = input_tokens
        if write_5m or write_1h or read:
            weighted += write_5m * self.write_5m + write_1h * self.write_1h + read * self.read
        return (weighted * price.input + output_tokens * price.output) / MILLION

    def batch_cost(self, model: str, usage: Usage) -> Decimal | None:
        """USD at batch prices; None for a model the table does not know."""
        full = self.synchronous_cost(model, usage)
        return None if full is None else full * self.batch_discount


def estimate_input_tokens(params: Mapping[str, Any], encoded_size: int) -> int:
    """A pre-run estimate: about four bytes of request JSON a token."""
    return max(1, encoded_size // CHARS_PER_TOKEN)


@dataclass
class Estimate:
    requests: int = 0
    input_tokens: int = 0
    max_output_tokens: int = 0
    worst_case_usd: Decimal = Decimal(0)
    unknown_models: set[str] = field(default_factory=set)

    def add(self, table: PriceTable, params: Mapping[str, Any], encoded_size: int) -> None:
        tokens = estimate_input_tokens(params, encoded_size)
        max_tokens = int(params.get("max_tokens", 0))
        self.requests += 1
        self.input_tokens += tokens
        self.max_output_tokens += max_tokens
        cost = table.batch_cost(str(params.get("model")), Usage(tokens, max_tokens))
        if cost is None:
            self.unknown_models.add(str(params.get("model")))
        else:
            self.worst_case_usd += cost
