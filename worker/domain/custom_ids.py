"""custom_id encoding: which deployment, which request, which attempt.

A remote batch's results name their requests only through custom_id, and the
reconciler relies on that to account for batches whose create outcome was lost,
so the encoding is reversible and fits the API's `^[a-zA-Z0-9_-]{1,64}$`.

Every custom_id carries the deployment's name (`bl<deployment>_<request>-<attempt>`):
two batchline deployments sharing one API key see each other's batches in the
list, and the name is what keeps one from taking the other's results as its own.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from typing import NamedTuple

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REQUEST_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
DEPLOYMENT_PATTERN = re.compile(r"^[a-z0-9]{1,16}$")
_ENCODED = re.compile(r"^bl([a-z0-9]{1,16})_([0-9a-f]{32})-([0-9]{1,6})$")
# Before deployments had names; still read from batches this deployment planned itself.
_LEGACY = re.compile(r"^bl([0-9a-f]{32})-([0-9]{1,6})$")


def new_request_id() -> str:
    """A 32-hex id, time-ordered in its first 12 digits so indexes stay local.

    The 80 random bits come from `random`, seeded from os.urandom and reseeded
    in every forked child by CPython: ids need uniqueness, not secrecy, and a
    system call per enqueue would cost more than the rest of the id.
    """
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{random.getrandbits(80):020x}"


def new_deployment_name() -> str:
    """A name for a deployment that was given none: 10 random base-36 characters."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def check_deployment(name: str) -> str:
    if not DEPLOYMENT_PATTERN.match(name):
        raise ValueError(f"a deployment name is 1 to 16 of a-z and 0-9, got {name!r}")
    return name


class RequestRef(NamedTuple):
    request_id: str
    attempt: int


def encode_custom_id(request_id: str, attempt: int, deployment: str = "") -> str:
    """The custom_id of one attempt; without a deployment, the legacy unnamed form."""
    if not REQUEST_ID_PATTERN.match(request_id):
        raise ValueError(f"not a batchline request id: {request_id!r}")
    if not 1 <= attempt <= 999_999:
        raise ValueError(f"attempt out of range: {attempt}")
    if not deployment:
        return f"bl{request_id}-{attempt}"
    return f"bl{check_deployment(deployment)}_{request_id}-{attempt}"


def decode_custom_id(
    custom_id: str, deployment: str | None = "", *, legacy: bool = True
) -> RequestRef | None:
    """The request a custom_id names, or None for one this deployment did not make.

    A named custom_id is ours only if it names `deployment` (None: any name, for a
    batch we planned ourselves, whose body we wrote under whatever name we had then);
    an unnamed (legacy) one only when `legacy` says the batch is known to be ours.
    """
    match = _ENCODED.match(custom_id)
    if match is not None:
        if deployment is not None and match.group(1) != deployment:
            return None
        return RequestRef(match.group(2), int(match.group(3)))
    old = _LEGACY.match(custom_id) if legacy else None
    if old is None:
        return None
    return RequestRef(old.group(1), int(old.group(2)))


def is_batchline_shaped(custom_id: str) -> bool:
    """Whether a custom_id looks like one any batchline deployment made."""
    return bool(_ENCODED.match(custom_id) or _LEGACY.match(custom_id))
