"""Cost arithmetic: tokens to USD at batch prices, and worst-case bounds.

Prices are per million tokens at synchronous rates; a batch result costs
`batch_discount` of that for every token kind, cache writes and reads being
priced as multiples of the input price. Decimal throughout: money.

A model id is priced by its family: `claude-sonnet-4-20250514`,
`claude-sonnet-4-0` and `claude-sonnet-4` are one model to the price table
(see `model_family`). Exact rules, never prefixes: a prefix would price a new
`claude-opus-4-9` as `claude-opus-4`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

MILLION = Decimal(1_000_000)
# An image is resized to at most ~1.15 megapixels, ~1,600 tokens, whatever its
# bytes: a small file can cost more tokens than it has bytes, so each image (and
# each document block) gets this allowance on top of the byte bound.
MEDIA_TOKENS = 1_600
# The tool-use system prompt the API adds when `tools` are given (a few hundred
# tokens, more for some server tools); not in the request's bytes.
TOOLS_TOKENS = 1_000

_DATED = re.compile(r"-\d{8}$")
_ALIAS_SUFFIXES = ("-latest", "-0")


@lru_cache(maxsize=1024)  # ingestion prices every result line: a few model ids, many times
def model_family(model: str) -> str:
    """`claude-sonnet-4-20250514` / `-0` / `-latest` -> `claude-sonnet-4`."""
    name = _DATED.sub("", model.strip())
    for suffix in _ALIAS_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


@dataclass(frozen=True)
class ModelPrice:
    input: Decimal
    output: Decimal
    # This model's cache-read multiplier, where it differs from the table's.
    read: Decimal | None = None
    # Above this many prompt tokens (input + cache), the long-context rates apply.
    long_above: int | None = None
    long_input: Decimal | None = None
    long_output: Decimal | None = None

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> ModelPrice:
        def optional(key: str) -> Decimal | None:
            return _dec(doc[key]) if key in doc else None

        long_above = doc.get("long_above")
        return cls(
            _dec(doc["input"]),
            _dec(doc["output"]),
            optional("read"),
            int(long_above) if long_above is not None else None,
            optional("long_input"),
            optional("long_output"),
        )

    def rates(self, prompt_tokens: int) -> tuple[Decimal, Decimal]:
        """(input, output) per million for a request of this many prompt tokens."""
        if self.long_above is not None and prompt_tokens > self.long_above:
            return self.long_input or self.input, self.long_output or self.output
        return self.input, self.output

    @property
    def highest(self) -> tuple[Decimal, Decimal]:
        zero = Decimal(0)
        return max(self.input, self.long_input or zero), max(self.output, self.long_output or zero)


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
    # The price of any model the table does not list; None: such a model is unknown.
    fallback: ModelPrice | None = None

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> PriceTable:
        multipliers = doc.get("cache_multipliers", {})
        models = {
            model_family(name): ModelPrice.from_mapping(p)
            for name, p in doc.get("models", {}).items()
        }
        fallback = doc.get("fallback")
        return cls(
            models=models,
            batch_discount=_dec(doc.get("batch_discount", "0.5")),
            write_5m=_dec(multipliers.get("write_5m", "1.25")),
            write_1h=_dec(multipliers.get("write_1h", "2")),
            read=_dec(multipliers.get("read", "0.1")),
            fallback=ModelPrice.from_mapping(fallback) if fallback is not None else None,
        )

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's family price, else the fallback; None: unknown (never free)."""
        return self.models.get(model_family(model), self.fallback)

    @property
    def highest_rates(self) -> tuple[Decimal, Decimal]:
        """The dearest (input, output) rates listed: what an unpriced result counts at."""
        prices = [*self.models.values(), *([self.fallback] if self.fallback else [])]
        if not prices:
            return Decimal(0), Decimal(0)
        return max(p.highest[0] for p in prices), max(p.highest[1] for p in prices)

    @property
    def dearest_input_multiplier(self) -> Decimal:
        """The most an input token can be billed at, relative to the input price."""
        return max(Decimal(1), self.write_5m, self.write_1h)

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
        in_rate, out_rate = price.rates(input_tokens + write_5m + write_1h + read)
        weighted: Decimal | int = input_tokens
        if write_5m or write_1h or read:
            read_multiplier = self.read if price.read is None else price.read
            weighted += write_5m * self.write_5m + write_1h * self.write_1h + read * read_multiplier
        return (weighted * in_rate + output_tokens * out_rate) / MILLION

    def batch_cost(self, model: str, usage: Usage) -> Decimal | None:
        """USD at batch prices; None for a model the table does not know."""
        full = self.synchronous_cost(model, usage)
        return None if full is None else full * self.batch_discount

    def worst_case(self, params: Mapping[str, Any], encoded_size: int) -> Decimal | None:
        """The most this request can be billed at batch prices; None if its model is unknown.

        Every prompt token at the dearest rate it can be billed (a 1-hour cache write
        when the request has any `cache_control`: priming turns breakpoints into
        1-hour writes), and `max_tokens` of output (thinking included)."""
        price = self.price_of(str(params.get("model")))
        if price is None:
            return None
        prompt = input_token_bound(params, encoded_size)
        in_rate, out_rate = price.rates(prompt)
        multiplier = self.dearest_input_multiplier if mentions_cache(params) else Decimal(1)
        output = int(params.get("max_tokens", 0))
        return (prompt * multiplier * in_rate + output * out_rate) / MILLION * self.batch_discount


def input_token_bound(params: Mapping[str, Any], encoded_size: int) -> int:
    """An upper bound on a request's prompt tokens, before it is run.

    A token stands for at least one byte of text, and the request's JSON holds
    every such byte (escapes and keys only add bytes): the encoded size bounds
    the text. Images and documents cost tokens their bytes do not bound, and
    tools add a system prompt: those get fixed allowances on top."""
    media = _count_media(params.get("messages")) + _count_media(params.get("system"))
    tools = TOOLS_TOKENS if params.get("tools") else 0
    return encoded_size + media * MEDIA_TOKENS + tools


def _count_media(value: object) -> int:
    if isinstance(value, list):
        return sum(_count_media(v) for v in value)
    if isinstance(value, dict):
        own = 1 if value.get("type") in ("image", "document") else 0
        return own + sum(_count_media(v) for v in value.values() if isinstance(v, (list, dict)))
    return 0


def mentions_cache(params: Mapping[str, Any]) -> bool:
    """Whether any part of the request asks for caching (so it may write the cache)."""
    return _has_cache_control(params)


def _has_cache_control(value: object) -> bool:
    if isinstance(value, Mapping):
        return "cache_control" in value or any(_has_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_cache_control(v) for v in value)
    return False


@dataclass
class Estimate:
    requests: int = 0
    # An upper bound, not an average (see input_token_bound).
    input_tokens: int = 0
    max_output_tokens: int = 0
    worst_case_usd: Decimal = Decimal(0)
    unknown_models: set[str] = field(default_factory=set)

    def add(self, table: PriceTable, params: Mapping[str, Any], encoded_size: int) -> None:
        self.requests += 1
        self.input_tokens += input_token_bound(params, encoded_size)
        self.max_output_tokens += int(params.get("max_tokens", 0))
        cost = table.worst_case(params, encoded_size)
        if cost is None:
            self.unknown_models.add(str(params.get("model")))
        else:
            self.worst_case_usd += cost
