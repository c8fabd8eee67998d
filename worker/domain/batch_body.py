"""The create request's body: `{"requests":[{"custom_id":…,"params":…},…]}`.

Encoded here, beside the custom_id decoder (`custom_ids`) and the size rule
(`planning`), so the three cannot drift apart. The SQL adapter streams the
rows; this turns them into bytes a slice at a time, so the body is never whole
in memory. `params` are copied as stored (already JSON), except for a cache
primer, whose breakpoints are rewritten to cache for 1 hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import orjson

from batchline.domain.custom_ids import encode_custom_id
from batchline.domain.prefix import with_hour_breakpoints

BODY_START = b'{"requests":['
BODY_END = b"]}"
SEPARATOR = ","
# The longest custom_id: a 16-character deployment name and a 6-digit attempt.
LONGEST_CUSTOM_ID = f"bl{'z' * 16}_{'0' * 32}-999999"


class BodyRow(NamedTuple):
    """One request as the body needs it: its id, this attempt, its params (JSON text)."""

    request_id: str
    attempt: int
    params: str
    cache_ttl_1h: bool


def encode_entry(row: BodyRow, deployment: str = "") -> str:
    """One request's entry in the body."""
    custom_id = encode_custom_id(row.request_id, row.attempt, deployment)
    params = row.params
    if row.cache_ttl_1h:
        params = orjson.dumps(with_hour_breakpoints(orjson.loads(params))).decode()
    return f'{{"custom_id":"{custom_id}","params":{params}}}'


def _envelope_bytes() -> int:
    """The most an entry (with its separator) adds to its params' bytes."""
    empty = f'{{"custom_id":"{LONGEST_CUSTOM_ID}","params":}}'
    return len(empty.encode()) + len(SEPARATOR)


ENVELOPE_BYTES_PER_REQUEST = _envelope_bytes()
EMPTY_BODY_BYTES = len(BODY_START) + len(BODY_END)


def encode_body(slices: Iterable[Sequence[BodyRow]], deployment: str = "") -> Iterator[bytes]:
    """The body, one chunk of bytes per slice of rows (and one each for its ends)."""
    yield BODY_START
    first = True
    for rows in slices:
        text = SEPARATOR.join(encode_entry(row, deployment) for row in rows)
        yield (text if first else SEPARATOR + text).encode()
        first = False
    yield BODY_END
