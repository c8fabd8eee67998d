"""POST /v1/requests: one params body, or a JSONL body streamed in chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from anyio import to_thread
from starlette.requests import Request

from batchline.domain.custom_ids import CUSTOM_ID_PATTERN
from batchline.domain.tokens import Principal
from batchline.domain.validation import InvalidRequest
from batchline.http_api.errors import ApiError, from_enqueue, invalid
from batchline.producer import Item, Producer

# Fields beside `params` in an envelope or a JSONL line; anything else is refused.
OPTION_FIELDS = ("key", "tags", "on_result", "max_attempts", "betas", "priority", "deadline")
# Options not built yet: refused, never dropped (none at present).
UNSUPPORTED_FIELDS: tuple[str, ...] = ()
CHUNK = 500


@dataclass(frozen=True)
class Accepted:
    request_id: str
    key: str | None
    custom_id: str | None = None


def too_large(limit: int, what: str) -> ApiError:
    return ApiError(413, "request_too_large", f"{what} is larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 past `limit` (from Content-Length, else while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, "the request body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit, "the request body")
    return bytes(body)


def header_options(request: Request) -> dict[str, Any]:
    """Options given as headers: Idempotency-Key, Batchline-Tags (JSON), Batchline-On-Result."""
    options: dict[str, Any] = {}
    for name in UNSUPPORTED_FIELDS:
        if f"batchline-{name}" in request.headers:
            raise unsupported(name)
    if (key := request.headers.get("idempotency-key")) is not None:
        options["key"] = key
    if (tags := request.headers.get("batchline-tags")) is not None:
        try:
            options["tags"] = orjson.loads(tags)
        except orjson.JSONDecodeError:
            raise invalid("the Batchline-Tags header must be a JSON object") from None
    if (on_result := request.headers.get("batchline-on-result")) is not None:
        options["on_result"] = on_result
    if (deadline := request.headers.get("batchline-deadline")) is not None:
        options["deadline"] = deadline
    if (priority := request.headers.get("batchline-priority")) is not None:
        try:
            options["priority"] = int(priority)
        except ValueError:
            raise invalid("the Batchline-Priority header must be an integer") from None
    return options


def unsupported(name: str) -> ApiError:
    return invalid(f"{name} is not supported yet; not enqueued")


def split_envelope(doc: object, where: str) -> tuple[object, dict[str, Any]]:
    """(params, options) from `{"params": ..., <options>}`, or a bare params body."""
    if not isinstance(doc, Mapping) or "params" not in doc:
        return doc, {}
    for name in UNSUPPORTED_FIELDS:
        if name in doc:
            raise unsupported(name)
    extra = sorted(set(doc) - {"params", "custom_id", *OPTION_FIELDS})
    if extra:
        raise invalid(f"{where}unknown field(s) beside params: {', '.join(extra)}")
    return doc["params"], {k: doc[k] for k in OPTION_FIELDS if k in doc}


def http_deadline(options: dict[str, Any]) -> dict[str, Any]:
    """`deadline` as HTTP gives it: seconds from now (a number, or digits in the
    Batchline-Deadline header) or an ISO 8601 time with its offset."""
    value = options.get("deadline")
    if not isinstance(value, str):
        return options
    try:
        parsed: object = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise invalid(
                "deadline must be seconds from now or an ISO 8601 time with its offset"
            ) from None
    return dict(options, deadline=parsed)


def scoped(principal: Principal, options: dict[str, Any]) -> Item | dict[str, Any]:
    """Options with the token's tenant tag set and its key put in the tenant's namespace."""
    if principal.scope is None:
        return options
    name, value = principal.scope
    tags = options.get("tags")
    tags = {} if tags is None else tags
    if not isinstance(tags, Mapping):
        raise invalid(f"tags must be a mapping, got {type(tags).__name__}")
    if name in tags and tags[name] != value:
        raise ApiError(403, "permission_error", f"this token may only tag {name}={value}")
    out = dict(options, tags={**tags, name: value})
    if isinstance(out.get("key"), str):
        out["key"] = principal.key_prefix() + out["key"]
    return out


async def enqueue_one(
    producer: Producer, principal: Principal, doc: object, headers: dict[str, Any]
) -> Accepted:
    params, options = split_envelope(doc, "")
    options = http_deadline(dict(scoped(principal, {**headers, **options})))  # type: ignore[arg-type]
    try:
        handle = await to_thread.run_sync(lambda: producer.enqueue(params, **options))  # type: ignore[arg-type]
    except Exception as exc:
        raise (from_enqueue(exc) or exc) from None
    return Accepted(handle.id, visible_key(principal, options.get("key")))


def visible_key(principal: Principal, key: object) -> str | None:
    if not isinstance(key, str):
        return None
    return key.removeprefix(principal.key_prefix())


async def lines(request: Request, line_limit: int, total_limit: int) -> AsyncIterator[bytes]:
    """Each non-blank line of the body, streamed: never more than one line plus a chunk held."""
    pending = bytearray()
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > total_limit:
            raise too_large(total_limit, "the JSONL body")
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end]).strip()
            del pending[: end + 1]
            if line:
                yield line
        if len(pending) > line_limit:
            raise too_large(line_limit, "a line of the JSONL body")
    if pending.strip():
        yield bytes(pending).strip()


class Bulk:
    """Enqueues JSONL lines in chunks; on a bad line, everything before it is kept."""

    def __init__(self, producer: Producer, principal: Principal) -> None:
        self.producer = producer
        self.principal = principal
        self.accepted: list[Accepted] = []
        self.seen: set[str] = set()
        self.pending: list[tuple[int, str, Item]] = []

    def add(self, number: int, line: bytes) -> None:
        where = f"line {number}: "
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise invalid(f"{where}not JSON ({exc})") from None
        if not isinstance(doc, Mapping) or "params" not in doc:
            raise invalid(f"{where}each line must be an object {{custom_id, params}}")
        custom_id = doc.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.match(custom_id):
            raise invalid(
                f"{where}custom_id must match ^[a-zA-Z0-9_-]{{1,64}}$, got {custom_id!r:.80}"
            )
        if "key" in doc:
            raise invalid(f"{where}the custom_id is the line's idempotency key; key is not allowed")
        if custom_id in self.seen:
            raise invalid(f"{where}custom_id {custom_id!r} appears twice")
        self.seen.add(custom_id)
        params, options = split_envelope(doc, where)
        options = http_deadline(dict(scoped(self.principal, {**options, "key": custom_id})))  # type: ignore[arg-type]
        self.pending.append((number, custom_id, Item(params, **options)))  # type: ignore[arg-type]

    async def flush(self) -> None:
        part, self.pending = self.pending, []
        if part:
            await to_thread.run_sync(self._write, part)

    def _write(self, part: list[tuple[int, str, Item]]) -> None:
        try:
            handles = self.producer.enqueue_many([item for _, _, item in part])
        except InvalidRequest:
            # Find the first bad line: the good ones before it are written, one by one.
            for number, custom_id, item in part:
                self._write_one(number, custom_id, item)
            raise AssertionError("enqueue_many refused a chunk whose lines all pass") from None
        for (_, custom_id, item), handle in zip(part, handles, strict=True):
            self.accepted.append(Accepted(handle.id, item.key, custom_id))

    def _write_one(self, number: int, custom_id: str, item: Item) -> None:
        try:
            (handle,) = self.producer.enqueue_many([item])
        except Exception as exc:
            mapped = from_enqueue(exc)
            if mapped is None:
                raise
            mapped.message = f"line {number}: {mapped.message}; {self.kept()}"
            raise mapped from None
        self.accepted.append(Accepted(handle.id, item.key, custom_id))

    def kept(self) -> str:
        return (
            f"the {len(self.accepted)} line(s) before it were enqueued "
            "(custom_ids are idempotency keys: send the corrected body again)"
        )


async def enqueue_jsonl(
    request: Request, producer: Producer, principal: Principal, line_limit: int, total_limit: int
) -> list[Accepted]:
    bulk = Bulk(producer, principal)
    number = 0
    try:
        async for line in lines(request, line_limit, total_limit):
            number += 1
            try:
                bulk.add(number, line)
            except ApiError as exc:
                await bulk.flush()
                exc.message = f"{exc.message}; {bulk.kept()}"
                raise
            if len(bulk.pending) >= CHUNK:
                await bulk.flush()
        await bulk.flush()
    except ApiError as exc:
        if exc.status == 413:
            await bulk.flush()
            exc.message = f"{exc.message}; {bulk.kept()}"
        raise
    except Exception as exc:
        mapped = from_enqueue(exc)
        if mapped is None:
            raise
        raise mapped from None
    if not bulk.accepted:
        raise invalid("the JSONL body has no lines")
    return bulk.accepted
