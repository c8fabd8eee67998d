"""Bearer tokens: kept as sha256 digests, compared in constant time, optionally tenant-scoped."""

from __future__ import annotations

import hashlib
import hmac

from batchline.domain.tokens import Principal


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(principals: list[Principal], authorization: str | None) -> Principal | None:
    """The principal whose digest matches the bearer token, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = token_digest(token.strip())
    found = None
    # Every digest is compared (no early exit), each in constant time, so the
    # answer's timing says nothing about how close a guess was.
    for principal in principals:
        if hmac.compare_digest(principal.digest, digest):
            found = principal
    return found
