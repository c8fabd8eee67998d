"""The ledger's arithmetic against figures computed by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batchline.domain.cost import Estimate, PriceTable, Usage
from batchline.prices import PricesError, load_prices

M = 1_000_000
SONNET = "claude-3-5-sonnet-20241022"  # $3 in, $15 out per million, synchronous


@pytest.fixture
def table() -> PriceTable:
    return load_prices()


@pytest.mark.parametrize(
    ("usage", "usd"),
    [
        (Usage(input_tokens=M), "1.50"),  # 3 * 0.5
        (Usage(output_tokens=M), "7.50"),  # 15 * 0.5
        (Usage(cache_write_5m_tokens=M), "1.875"),  # 3 * 1.25 * 0.5
        (Usage(cache_write_1h_tokens=M), "3.00"),  # 3 * 2 * 0.5
        (Usage(cache_read_tokens=M), "0.15"),  # 3 * 0.1 * 0.5
        (Usage(1200, 350, 0, 2048, 0), "0.010569"),  # (1200*3 + 2048*6 + 350*15) / 1e6 / 2
    ],
)
def test_cost__each_token_kind_at_batch_prices(table: PriceTable, usage: Usage, usd: str) -> None:
    assert table.batch_cost(SONNET, usage) == Decimal(usd)
    assert table.synchronous_cost(SONNET, usage) == Decimal(usd) * 2


def test_cost__dated_model_ids_take_their_family_price(table: PriceTable) -> None:
    assert table.batch_cost("claude-sonnet-4-5-20250929", Usage(input_tokens=M)) == Decimal("1.5")


def test_cost__unknown_models_are_unknown_not_free(table: PriceTable) -> None:
    assert table.batch_cost("gpt-imaginary", Usage(input_tokens=M)) is None


def test_cost__estimate_is_worst_case_from_max_tokens(table: PriceTable) -> None:
    estimate = Estimate()
    estimate.add(table, {"model": SONNET, "max_tokens": 1000}, encoded_size=4000)
    estimate.add(table, {"model": "mystery", "max_tokens": 10}, encoded_size=40)
    assert (estimate.requests, estimate.input_tokens, estimate.max_output_tokens) == (2, 1010, 1010)
    # 1000 input tokens * 3 + 1000 output * 15, per million, halved
    assert estimate.worst_case_usd == Decimal("0.009")
    assert estimate.unknown_models == {"mystery"}


def test_prices__a_users_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('batch_discount = 0.5\n[models."m"]\ninput = 2\noutput = 4\n')
    assert load_prices(path).batch_cost("m", Usage(M, M)) == Decimal(3)
    path2 = tmp_path / "broken.toml"
    path2.write_text("models = [")
    with pytest.raises(PricesError, match=r"broken\.toml"):
        load_prices(path2)


@pytest.mark.parametrize(
    "usage",
    [Usage(1200, 350, 0, 2048, 0), Usage(5, 7, 11, 13, 17), Usage(input_tokens=M), Usage()],
)
def test_token_cost__equals_batch_cost(usage: Usage) -> None:
    table = load_prices()
    for model in ("claude-sonnet-4-5-20250929", "claude-haiku-4-5", "no-such-model"):
        assert table.token_cost(
            model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_write_5m_tokens,
            usage.cache_write_1h_tokens,
            usage.cache_read_tokens,
        ) == table.batch_cost(model, usage)
