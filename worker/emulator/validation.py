"""What the API checks, and when.

The create envelope is checked at once (a 400 and nothing created); each
request's `params` are checked as the batch is processed, so a bad one comes
back as an `errored` result with `invalid_request_error`. The synchronous
endpoints check the same params at once (a 400).

Params are checked against the installed SDK's own request types (read at run
time by `sdk_types`: the beta types on the beta endpoints), then against the
API's documented cross-field rules, which the types cannot show. Which names a
request may carry is batchline's one list (`domain.validation.allowed_params`,
itself read from the SDK's types), so the emulator refuses exactly what
batchline's door refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from anthropic.types import message_count_tokens_params as count_params
from anthropic.types import message_create_params as create_params
from anthropic.types.beta import message_count_tokens_params as beta_count_params
from anthropic.types.beta import message_create_params as beta_create_params

from batchline.domain.validation import SAMPLING_PARAMS, allowed_params

from .errors import invalid_request
from .sdk_types import checker, format_problem

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")

MIN_THINKING_BUDGET = 1024
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# Output ceilings from the models overview, by model (with or without its date
# or -latest); models not listed (newer ones the SDK already names) are not
# limited here.
MAX_OUTPUT_TOKENS: dict[str, int] = {
    "claude-opus-4-6": 128_000,
    "claude-opus-4-5": 64_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4-0": 32_000,
    "claude-opus-4": 32_000,
    "claude-sonnet-4-6": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-sonnet-4-0": 64_000,
    "claude-sonnet-4": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-3-7-sonnet": 64_000,
    "claude-3-5-haiku": 8_192,
    "claude-3-haiku": 4_096,
}
_MODEL_SUFFIX = re.compile(r"-(\d{8}|latest)$")

Params = dict[str, Any]


@dataclass(frozen=True)
class Surface:
    """Which API a request came through: beta (`?beta=true`) or not, and the betas it named."""

    beta: bool = False
    betas: tuple[str, ...] = ()

    @classmethod
    def of(cls, query: dict[str, list[str]], beta_header: str | None) -> Surface:
        # The SDK's beta resources send `anthropic-beta` when betas are given,
        # and no `?beta=true` (2.14); curl users send the query. Either counts.
        names = tuple(b.strip() for b in (beta_header or "").split(",") if b.strip())
        beta = (query.get("beta") or ["false"])[-1].lower() == "true"
        return cls(beta or bool(names), names)


NON_BETA = Surface()


def parse_create_body(body: bytes | bytearray) -> list[tuple[str, Params]]:
    """The (custom_id, params) pairs of a create body, or an `ApiError` (400)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise invalid_request("The request body must be a JSON object")
    extra = sorted(set(document) - {"requests"})
    if extra:
        raise invalid_request(f"{extra[0]}: Extra inputs are not permitted")
    requests = document.get("requests")
    if not isinstance(requests, list):
        raise invalid_request("requests: Input should be a valid list")
    if not 1 <= len(requests) <= MAX_REQUESTS:
        raise invalid_request(
            f"requests: a batch holds 1 to {MAX_REQUESTS:,} requests, got {len(requests):,}"
        )
    pairs = [_envelope(index, item) for index, item in enumerate(requests)]
    _check_unique(pairs)
    return pairs


def _envelope(index: int, item: object) -> tuple[str, Params]:
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise invalid_request(f"{where}: Input should be a valid dictionary")
    extra = sorted(set(item) - {"custom_id", "params"})
    if extra:
        raise invalid_request(f"{where}.{extra[0]}: Extra inputs are not permitted")
    custom_id, params = item.get("custom_id"), item.get("params")
    if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
        raise invalid_request(
            f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        )
    if not isinstance(params, dict):
        raise invalid_request(f"{where}.params: Input should be a valid dictionary")
    return custom_id, params


def _check_unique(pairs: list[tuple[str, Params]]) -> None:
    seen: set[str] = set()
    for index, (custom_id, _) in enumerate(pairs):
        if custom_id in seen:
            raise invalid_request(
                f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}'; "
                "each custom_id must be unique within a batch"
            )
        seen.add(custom_id)


def params_error(params: Params, surface: Surface = NON_BETA, *, batch: bool = True) -> str | None:
    """Why the API would refuse these Messages params, or None if it would not."""
    types = beta_create_params if surface.beta else create_params
    streaming = not batch and params.get("stream") is True
    kind = (
        types.MessageCreateParamsStreaming if streaming else types.MessageCreateParamsNonStreaming
    )
    problem = _names_error(params, surface) or _typed_error(params, kind)
    if problem is not None:
        return problem
    return (
        _unnamed_beta_error(params, surface)
        or _max_tokens_error(params, batch)
        or _messages_error(params)
        or _tools_error(params)
    )


def _names_error(params: Params, surface: Surface) -> str | None:
    """A parameter batchline's own door (domain.validation) would not let through.

    One list for both: the door and the emulator accept the same names."""
    # The beta types carry `betas` in a request's params too; batchline sends
    # it as the anthropic-beta header instead, so its door leaves it out.
    allowed = allowed_params(surface.beta) | ({"betas"} if surface.beta else frozenset())
    unknown = [str(name) for name in params if name not in allowed]
    return f"{unknown[0]}: Extra inputs are not permitted" if unknown else None


def _typed_error(params: Params, kind: Any) -> str | None:
    """Values checked against the SDK's request type; sampling parameters, which
    the API still takes though the type dropped them, checked as numbers."""
    typed = {k: v for k, v in params.items() if k not in SAMPLING_PARAMS}
    problem = checker(kind).check(typed)
    if problem is not None:
        return format_problem(problem)
    for name in SAMPLING_PARAMS & params.keys():
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: Input should be a valid number"
    return None


def count_params_error(params: Params, surface: Surface = NON_BETA) -> str | None:
    """Why the API would refuse to count the tokens of these params, or None."""
    kind = (beta_count_params if surface.beta else count_params).MessageCountTokensParams
    problem = checker(kind).check(params)
    if problem is not None:
        return format_problem(problem)
    return _unnamed_beta_error(params, surface) or _messages_error(params) or _tools_error(params)


def _unnamed_beta_error(params: Params, surface: Surface) -> str | None:
    # A beta-only param needs its beta named in `anthropic-beta`; which beta
    # goes with which param is not in the types, so any named beta will do.
    if not surface.beta or surface.betas:
        return None
    extra = sorted(set(params) - allowed_params() - {"betas"})
    if extra:
        return f"{extra[0]}: needs its beta named in the anthropic-beta header"
    return None


def _max_tokens_error(params: Params, batch: bool) -> str | None:
    max_tokens: int = params["max_tokens"]
    # 0 pre-warms the prompt cache on the Messages API; a batch cannot do that.
    least = 1 if batch else 0
    if max_tokens < least:
        return f"max_tokens: Input should be greater than or equal to {least}"
    ceiling = max_output_tokens(str(params["model"]))
    if ceiling is not None and max_tokens > ceiling:
        return (
            f"max_tokens: {max_tokens} > {ceiling}, which is the maximum allowed number "
            f"of output tokens for {params['model']}"
        )
    return _thinking_error(params.get("thinking"), max_tokens)


def _thinking_error(thinking: object, max_tokens: int | None) -> str | None:
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking["budget_tokens"]
    if budget < MIN_THINKING_BUDGET:
        least = MIN_THINKING_BUDGET
        return f"thinking.budget_tokens: Input should be greater than or equal to {least}"
    if max_tokens is not None and budget >= max_tokens:
        return "max_tokens: must be greater than thinking.budget_tokens"
    return None


def _messages_error(params: Params) -> str | None:
    messages = params["messages"]
    if not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        content = message.get("content")
        for place, block in enumerate(content if isinstance(content, list) else ()):
            source = block.get("source") if isinstance(block, dict) else None
            if (
                isinstance(source, dict)
                and source.get("type") == "base64"
                and not source.get("data")
            ):
                return f"messages.{index}.content.{place}.source.data: must not be empty"
    for index, sequence in enumerate(params.get("stop_sequences") or ()):
        if not sequence.strip():
            return f"stop_sequences.{index}: each stop sequence must contain non-whitespace"
    if params.get("thinking") is not None and "max_tokens" not in params:
        return _thinking_error(params["thinking"], None)
    return None


def _tools_error(params: Params) -> str | None:
    tools = params.get("tools") or []
    names = set()
    for index, tool in enumerate(tools):
        name = tool.get("name")
        if tool.get("type") in (None, "custom") and not TOOL_NAME.fullmatch(name):
            return f"tools.{index}.name: String should match pattern '{TOOL_NAME.pattern}'"
        if name is not None:
            names.add(name)
    choice = params.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    if forced and not tools:
        return "tool_choice: tool_choice requires tools"
    if (
        forced
        and isinstance(params.get("thinking"), dict)
        and params["thinking"].get("type") != "disabled"
    ):
        return (
            "tool_choice: Thinking may not be enabled when tool_choice forces tool use; "
            "use tool_choice 'auto' or 'none'"
        )
    if (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and choice.get("name") not in names
    ):
        return f"tool_choice.name: Tool {choice.get('name')!r} not found in tools"
    return None


def max_output_tokens(model: str) -> int | None:
    """The documented output ceiling of the model's family, or None if not documented."""
    return MAX_OUTPUT_TOKENS.get(_MODEL_SUFFIX.sub("", model))
