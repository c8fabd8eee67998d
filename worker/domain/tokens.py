"""HTTP intake tokens as BATCHLINE_HTTP_TOKENS writes them: sha256 digests, each
optionally scoped to one tenant tag. Parsed here, where the settings check them
and the HTTP intake reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for: everyone's requests, or one tenant tag's."""

    digest: str
    scope: tuple[str, str] | None = None

    def key_prefix(self) -> str:
        # Idempotency keys are global in SQL; a scoped token's keys live in its
        # tenant's namespace so two tenants' "order-1" never meet.
        return "" if self.scope is None else f"{self.scope[0]}={self.scope[1]}/"


def parse_tokens(spec: str) -> list[Principal]:
    """`<hex>[:<tag>=<value>],...` -> principals; ValueError names the bad entry."""
    principals: list[Principal] = []
    for index, raw in enumerate(part.strip() for part in spec.split(",")):
        if not raw:
            continue
        digest, sep, scope = raw.partition(":")
        digest = digest.lower()
        if not _HEX.match(digest):
            raise ValueError(
                f"BATCHLINE_HTTP_TOKENS entry {index + 1} must start with a sha256 hex digest "
                "(printf %s TOKEN | sha256sum), not a token"
            )
        if not sep:
            principals.append(Principal(digest))
            continue
        name, eq, value = scope.partition("=")
        if not eq or not name or not value:
            raise ValueError(
                f"BATCHLINE_HTTP_TOKENS entry {index + 1}: a scope is written <tag>=<value>"
            )
        principals.append(Principal(digest, (name, value)))
    return principals
