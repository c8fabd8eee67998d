"""Fast checks of the HTTP intake's tokens and the drop-in client's mapping of results."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types.messages import MessageBatchResult
from pydantic import TypeAdapter

from batchline.client import BatchCanceled, BatchExpired, to_message
from batchline.domain.tokens import Principal, parse_tokens
from batchline.http_api.auth import authenticate, token_digest
from batchline.settings import Settings, SettingsError

RESULT: TypeAdapter[MessageBatchResult] = TypeAdapter(MessageBatchResult)


def test_tokens__parsed_with_optional_tenant_scope() -> None:
    a, b = token_digest("one"), token_digest("two")
    assert parse_tokens(f"{a}, {b}:tenant=acme") == [Principal(a), Principal(b, ("tenant", "acme"))]
    assert parse_tokens("") == []


@pytest.mark.parametrize("spec", ["plain-token", "abc", f"{'0' * 64}:tenant", f"{'0' * 64}:=x"])
def test_tokens__a_raw_token_or_bad_scope_is_refused_by_settings(spec: str) -> None:
    with pytest.raises(SettingsError, match="BATCHLINE_HTTP_TOKENS entry 1"):
        Settings(http_tokens=spec).validate()


def test_authenticate__only_the_matching_bearer_token() -> None:
    principals = parse_tokens(f"{token_digest('one')},{token_digest('two')}:tenant=acme")
    assert authenticate(principals, "Bearer two") == principals[1]
    assert authenticate(principals, "bearer one") == principals[0]
    for header in (None, "", "Bearer", "Bearer three", "Basic one", "one"):
        assert authenticate(principals, header) is None


def test_settings__http_bind_must_be_host_and_port() -> None:
    with pytest.raises(SettingsError, match="BATCHLINE_HTTP_BIND"):
        Settings(http_bind="8080").validate()


def test_to_message__errored_results_raise_the_sdks_exceptions() -> None:
    for kind, cls, status in [
        ("invalid_request_error", anthropic.BadRequestError, 400),
        ("overloaded_error", anthropic.InternalServerError, 529),
        ("billing_error", anthropic.APIStatusError, 500),
    ]:
        result = RESULT.validate_python(
            {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": kind, "message": "m"},
                    "request_id": None,
                },
            }
        )
        with pytest.raises(cls) as raised:
            to_message(result)
        assert raised.value.status_code == status
    with pytest.raises(BatchExpired):
        to_message(RESULT.validate_python({"type": "expired"}))
    with pytest.raises(BatchCanceled):
        to_message(RESULT.validate_python({"type": "canceled"}))
