"""custom_id encoding: which request, which attempt.

A remote batch's results name their requests only through custom_id, and the
reconciler relies on that to account for batches whose create outcome was lost,
so the encoding is reversible and fits the API's `^[a-zA-Z0-9_-]{1,64}$`.
"""

from __future__ import annotations

import random
import re
import time
from typing import NamedTuple

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REQUEST_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_ENCODED = re.compile(r"^bl([0-9a-f]{32})-([0-9]{1,6})$")


def new_request_id() -> str:
    """A 32-hex id, time-ordered in its first 12 digits so indexes stay local.

    The 80 random bits come from `random`, seeded from os.urandom and reseeded
    in every forked child by CPython: ids need uniqueness, not secrecy, and a
    system call per enqueue would cost more than the rest of the id.
    """
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{random.getrandbits(80):020x}"


class RequestRef(NamedTuple):
    request_id: str
    attempt: int


def encode_custom_id(request_id: str, attempt: int) -> str:
    if not REQUEST_ID_PATTERN.match(request_id):
        raise ValueError(f"not a batchline request id: {request_id!r}")
    if not 1 <= attempt <= 999_999:
        raise ValueError(f"attempt out of range: {attempt}")
    return f"bl{request_id}-{attempt}"


def decode_custom_id(custom_id: str) -> RequestRef | None:
    """The request a custom_id names, or None for a custom_id batchline did not make."""
    match = _ENCODED.match(custom_id)
    if match is None:
        return None
    return RequestRef(match.group(1), int(match.group(2)))
