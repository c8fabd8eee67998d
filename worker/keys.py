"""Every Redis key and channel batchline uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "batchline"

    @property
    def intake_stream(self) -> str:
        return f"{self.prefix}:intake"

    @property
    def intake_group(self) -> str:
        return "intake"

    @property
    def intake_bundled_extra(self) -> str:
        """Requests held by bundles beyond one an entry, so depth counts requests."""
        return f"{self.prefix}:intake:bundled-extra"

    @property
    def intake_ledger(self) -> str:
        """Hash: this Redis dataset's epoch (a random id, gone with a flush) and
        the requests accepted into it, to count what a loss took (batchline.losses)."""
        return f"{self.prefix}:intake:ledger"

    @property
    def dead_letters(self) -> str:
        """Intake entries that could not be read, kept for a human to inspect."""
        return f"{self.prefix}:intake:dead"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:key:{key}"

    @property
    def settled_channel(self) -> str:
        """Pub/sub: ids of requests that reached a final state, to wake waiters."""
        return f"{self.prefix}:settled"

    @property
    def beat_lock(self) -> str:
        return f"{self.prefix}:beat-lock"
