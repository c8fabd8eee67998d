"""The ledger's arithmetic against figures computed by hand."""

from __future__ import annotations

import typing
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.domain.cost import (
    MEDIA_TOKENS,
    TOOLS_TOKENS,
    Estimate,
    PriceTable,
    Usage,
    input_token_bound,
    model_family,
)
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
    small = Usage(input_tokens=100_000)  # under the 200k long-context threshold
    assert table.batch_cost("claude-sonnet-4-5-20250929", small) == Decimal("0.15")


def test_cost__unknown_models_are_unknown_not_free(table: PriceTable) -> None:
    assert table.batch_cost("gpt-imaginary", Usage(input_tokens=M)) is None


def test_cost__estimate_is_worst_case_from_max_tokens(table: PriceTable) -> None:
    estimate = Estimate()
    estimate.add(table, {"model": SONNET, "max_tokens": 1000}, encoded_size=4000)
    estimate.add(table, {"model": "mystery", "max_tokens": 10}, encoded_size=40)
    # Input is bounded by bytes (a token is at least one byte), not averaged.
    assert (estimate.requests, estimate.input_tokens, estimate.max_output_tokens) == (2, 4040, 1010)
    # 4000 input tokens * 3 + 1000 output * 15, per million, halved
    assert estimate.worst_case_usd == Decimal("0.0135")
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


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-mythos-preview", "claude-mythos-preview"),
    ],
)
def test_model_family__strips_dates_and_alias_suffixes(model: str, family: str) -> None:
    assert model_family(model) == family


def _sdk_model_ids() -> list[str]:
    """Every model id the installed SDK's `Model` type names, read at run time."""
    from anthropic.types import Model, model_param

    ids: set[str] = set()
    for hint in (Model, model_param.ModelParam):
        for arg in typing.get_args(hint):
            ids.update(a for a in typing.get_args(arg) if isinstance(a, str))
    return sorted(ids)


def test_prices__every_model_id_the_sdk_lists_is_priced(table: PriceTable) -> None:
    ids = _sdk_model_ids()
    assert len(ids) >= 10  # the SDK's Literal was read, not an empty list
    # Dated ids the SDK no longer lists but the API still accepts, and aliases.
    ids += ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-opus-4-1-20250805"]
    ids += ["claude-sonnet-4-0", "claude-3-7-sonnet-latest", "claude-3-5-sonnet-20240620"]
    unpriced = [m for m in ids if table.price_of(m) is None]
    assert unpriced == []


def test_prices__a_new_model_is_unknown_not_priced_by_prefix(table: PriceTable) -> None:
    assert table.price_of("claude-opus-4-9") is None
    assert table.price_of("claude-sonnet-4-5-turbo") is None


def test_prices__a_fallback_prices_every_unlisted_model(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."claude-x-1"]\ninput = 1\noutput = 2\n[fallback]\ninput = 20\noutput = 40\n'
    )
    table = load_prices(path)
    assert table.batch_cost("claude-x-1-20260101", Usage(M, M)) == Decimal("1.5")
    assert table.batch_cost("anything-else", Usage(M, M)) == Decimal(30)


def test_cost__long_context_and_per_model_read_rates(table: PriceTable) -> None:
    # Haiku 5.5: $0.10/$0.50, or $0.50/$2.50 once the prompt passes 100k tokens.
    assert table.batch_cost("claude-haiku-5-5", Usage(100_000, 1000)) == Decimal("0.00525")
    assert table.batch_cost("claude-haiku-5-5", Usage(100_001, 1000)) == Decimal("0.02625025")
    # Fable 5.1 reads its cache at 0.025x ($0.25 of $10), not the table's 0.1x.
    assert table.batch_cost("claude-fable-5-1", Usage(cache_read_tokens=M)) == Decimal("0.125")


def test_input_token_bound__bytes_plus_media_and_tools_allowances() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}
    params = {
        "model": SONNET,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": "hi"}]}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
    }
    assert input_token_bound(params, 300) == 300 + MEDIA_TOKENS + TOOLS_TOKENS


@given(
    st.sampled_from(["claude-sonnet-4-5", "claude-haiku-5-5", "claude-fable-5-1", SONNET]),
    st.integers(1, 400_000),
    st.integers(1, 64_000),
    st.booleans(),
    st.lists(st.integers(0, 100), min_size=4, max_size=4),
    st.integers(0, 100),
)
def test_worst_case__bounds_every_bill_the_request_can_run_up(
    model: str, size: int, max_tokens: int, cached: bool, split: list[int], used: int
) -> None:
    """However a prompt of at most `size` tokens splits into plain input, 5-minute and
    1-hour writes and reads (writes only if the request asks for caching), and however
    much of max_tokens it uses, its cost never passes the worst case."""
    table = load_prices()
    params: dict[str, object] = {"model": model, "max_tokens": max_tokens, "messages": []}
    if cached:
        params["system"] = [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]
    weights = split if cached and sum(split) > 0 else [1, 0, 0, 0]
    parts = [size * w // sum(weights) for w in weights]
    usage = Usage(parts[0], max_tokens * used // 100, parts[1], parts[2], parts[3])
    worst = table.worst_case(params, size)
    cost = table.batch_cost(model, usage)
    assert worst is not None and cost is not None
    assert cost <= worst
