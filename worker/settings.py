"""One typed settings object, read once from the environment and passed down.

Every knob is a `BATCHLINE_*` variable; the API credentials are the SDK's own
`ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL`. The key is kept out of `repr`, so a
logged or displayed Settings never shows it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DATA_DIR = Path(".batchline")


class SettingsError(ValueError):
    """A setting has a value batchline cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_DATA_DIR / 'batchline.sqlite3'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    # Batching: a batch is cut when this many requests wait, or the oldest
    # has waited max_wait_seconds.
    max_batch_requests: int = 10_000
    max_batch_bytes: int = 200_000_000
    max_wait_seconds: float = 60.0
    poll_interval_seconds: float = 30.0
    intake_interval_seconds: float = 1.0
    reconcile_interval_seconds: float = 30.0
    max_attempts: int = 3
    intake_chunk: int = 5_000
    ingest_chunk: int = 2_000
    # An unacknowledged intake entry this old belongs to a dead consumer.
    intake_reclaim_seconds: float = 120.0
    # How long a create may be in flight before its outcome counts as unknown.
    create_timeout_seconds: float = 600.0
    # Allowance for clock differences between this machine and the API (reconciler).
    clock_skew_seconds: float = 60.0
    # How long a worker may hold an ingestion lease before another takes over.
    ingest_lease_seconds: float = 300.0
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    stream_key_prefix: str = "batchline"
    # The Celery queue result callbacks (`on_result`) are sent to, on this broker.
    callback_queue: str = "batchline-callbacks"
    # A new group of at least this many queued requests sharing a cached prefix is
    # primed first (a one-request batch writes the prefix); 0 turns priming off.
    prime_min_group: int = 50
    # Warn when an ended batch's results are not all in and its 29-day window closes sooner.
    results_expiry_margin_hours: float = 72.0
    # At most this much spend (USD at batch prices) per UTC day; 0 means no cap.
    daily_spend_cap_usd: float = 0.0

    # --- dashboard (`batchline dashboard`) ---
    # Basic auth as Flower takes it: user:password, comma-separated for several.
    dashboard_basic_auth: str = field(default="", repr=False)
    # Seconds between the pages' live refreshes.
    dashboard_refresh_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name in ("api_key", "base_url"):
                continue
            raw = env.get(f"BATCHLINE_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, str(f.type), raw)
        values["api_key"] = env.get("ANTHROPIC_API_KEY") or None
        values["base_url"] = env.get("ANTHROPIC_BASE_URL") or None
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        _check_url("BATCHLINE_DATABASE_URL", self.database_url, ("sqlite", "postgresql"))
        _check_url("BATCHLINE_REDIS_URL", self.redis_url, ("redis", "rediss", "unix"))
        if self.base_url is not None:
            _check_url("ANTHROPIC_BASE_URL", self.base_url, ("http", "https"))
        positive = {
            "max_batch_requests": self.max_batch_requests,
            "max_batch_bytes": self.max_batch_bytes,
            "poll_interval_seconds": self.poll_interval_seconds,
            "intake_interval_seconds": self.intake_interval_seconds,
            "reconcile_interval_seconds": self.reconcile_interval_seconds,
            "max_attempts": self.max_attempts,
            "intake_chunk": self.intake_chunk,
            "ingest_chunk": self.ingest_chunk,
            "intake_reclaim_seconds": self.intake_reclaim_seconds,
            "create_timeout_seconds": self.create_timeout_seconds,
            "ingest_lease_seconds": self.ingest_lease_seconds,
            "idempotency_ttl_seconds": self.idempotency_ttl_seconds,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"BATCHLINE_{name.upper()} must be > 0, got {value}")
        if self.prime_min_group < 0:
            raise SettingsError(
                f"BATCHLINE_PRIME_MIN_GROUP must be >= 0, got {self.prime_min_group}"
            )
        if self.clock_skew_seconds < 0:
            raise SettingsError(
                f"BATCHLINE_CLOCK_SKEW_SECONDS must be >= 0, got {self.clock_skew_seconds}"
            )
        if self.daily_spend_cap_usd < 0:
            raise SettingsError(
                f"BATCHLINE_DAILY_SPEND_CAP_USD must be >= 0, got {self.daily_spend_cap_usd}"
            )
        if self.max_wait_seconds < 0:
            raise SettingsError(
                f"BATCHLINE_MAX_WAIT_SECONDS must be >= 0, got {self.max_wait_seconds}"
            )
        _check_dashboard(self.dashboard_basic_auth, self.dashboard_refresh_seconds)
        if self.max_batch_requests > 100_000:
            raise SettingsError("BATCHLINE_MAX_BATCH_REQUESTS must be <= 100000 (the API's limit)")
        if self.max_batch_bytes > 256_000_000:
            raise SettingsError("BATCHLINE_MAX_BATCH_BYTES must be <= 256000000 (the API's limit)")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _parse(name: str, type_name: str, raw: str) -> object:
    var = f"BATCHLINE_{name.upper()}"
    if type_name not in ("int", "float"):
        return raw
    try:
        value: float = int(raw) if type_name == "int" else float(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a number, got {raw!r}") from None
    # nan slips past every `<= 0` check and inf never fires: refuse both.
    if not math.isfinite(value):
        raise SettingsError(f"{var} must be a finite number, got {raw!r}")
    return value


def _check_dashboard(basic_auth: str, refresh_seconds: float) -> None:
    if refresh_seconds <= 0:
        raise SettingsError(
            f"BATCHLINE_DASHBOARD_REFRESH_SECONDS must be > 0, got {refresh_seconds}"
        )
    for pair in filter(None, (p.strip() for p in basic_auth.split(","))):
        user, sep, password = pair.partition(":")
        if not (user and sep and password):
            raise SettingsError(
                "BATCHLINE_DASHBOARD_BASIC_AUTH must be user:password (comma-separated)"
            )


def _check_url(var: str, url: str, schemes: tuple[str, ...]) -> None:
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    if scheme not in schemes:
        raise SettingsError(
            f"{var} must be a URL with scheme {' or '.join(schemes)}, got {_redact(url)!r}"
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
