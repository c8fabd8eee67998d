"""One typed settings object, read once from the environment and passed down.

Every knob is a `BATCHLINE_*` variable (the field's name, upper-cased); the API
credentials are the SDK's own `ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL`. The
key is kept out of `repr`, so a logged or displayed Settings never shows it.

`Settings(...)` takes only what it is given (defaults for the rest);
`Settings.from_env()` reads the environment. A bad value raises
`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from batchline.domain.custom_ids import DEPLOYMENT_PATTERN
from batchline.domain.deadlines import DeadlineDefaults, parse_by_tag
from batchline.domain.scheduling import parse_priority_waits, parse_share_weights
from batchline.settings_env import ENV_PREFIX, SDK_VARIABLES, MappingEnvSource

DEFAULT_DATA_DIR = Path(".batchline")
# Below celery_app.TASK_SOFT_TIME_LIMIT (1,700 s), so a download's own deadline fires first.
MAX_INGEST_DEADLINE_SECONDS = 1500.0
# Fields read from the SDK's own variables rather than BATCHLINE_*.


class SettingsError(ValueError):
    """A setting has a value batchline cannot use; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,
        allow_inf_nan=False,
        populate_by_name=True,
        validate_default=True,
    )

    database_url: str = f"sqlite:///{DEFAULT_DATA_DIR / 'batchline.sqlite3'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_key: str | None = Field(
        default=None, repr=False, validation_alias=AliasChoices("api_key", "ANTHROPIC_API_KEY")
    )
    base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("base_url", "ANTHROPIC_BASE_URL")
    )
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
    # --- scheduling (issue 15): priorities, fair shares, capacity ---
    # Shorter maximum waits by priority: `5:10,1:30` cuts a batch once a request of
    # priority >= 5 waited 10 s (>= 1: 30 s); the rest wait max_wait_seconds.
    priority_max_wait: str = ""
    # A tag (e.g. `tenant`) whose values share each batch and the in-flight limit
    # by weight; empty: one queue, highest priority then oldest first.
    share_tag: str = ""
    # Weights of share-tag values, `acme:3,globex:1`; a value not named weighs 1.
    share_weights: str = ""
    # At most this many requests in batches the API has not finished (the
    # organisation's batch queue limit); 0: no limit.
    max_in_flight_requests: int = 0
    # --- bad data and bounded ingestion (issue 19) ---
    # A results line longer than this is skipped to its newline and its request failed.
    max_result_line_bytes: int = 64 << 20
    # A whole results download stops after this long; the next try resumes (below the task limit).
    ingest_deadline_seconds: float = 1200.0
    # At most this many batches download results at once, over all workers (leave intake a slot).
    ingest_concurrency: int = 1
    # --- Redis limits and losses (backpressure, timeouts, durable enqueue) ---
    # enqueue raises QueueFull once the intake stream holds this many bytes.
    max_queue_bytes: int = 100_000_000
    # ... or once Redis uses this fraction of its maxmemory (room left for Celery).
    redis_memory_high_water: float = 0.8
    # Every Redis call gives up after this long (a hung Redis raises TimeoutError).
    redis_socket_timeout_seconds: float = 10.0
    redis_connect_timeout_seconds: float = 5.0
    # enqueue returns only once the request is committed to SQL (no Redis on that path).
    durable_enqueue: bool = False
    # Deployment: the Celery queue every batchline task is routed to and the
    # worker consumes (`-Q`), so an application's own Celery shares the broker.
    celery_queue: str = "batchline"
    # Worker and beat log lines: `json` (ids as fields) or `text`.
    log_format: str = "json"
    # A price table (TOML) to use instead of the shipped one; empty: shipped.
    prices_file: str | None = None
    # `doctor` checks that Flower at this URL refuses strangers; empty: not checked.
    flower_url: str | None = None
    # --- deadlines (issue 15): the synchronous fallback ---
    # Deadline for requests enqueued without one, in seconds after enqueue; 0: none.
    deadline_seconds: float = 0.0
    # Per-tag defaults, first match wins: `tier=interactive:60,urgent:300` (name=value or name).
    deadline_by_tag: str = ""
    # A request not final by its deadline minus this goes through the synchronous API.
    sync_latency_seconds: float = 30.0
    # At most this many synchronous fallback calls at once, over all workers.
    sync_concurrency: int = 4
    # One synchronous call gives up after this long (then retried while the deadline allows).
    sync_timeout_seconds: float = 120.0
    # How often beat looks for requests whose deadline is near (skipped while none has one).
    deadline_scan_seconds: float = 2.0

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: the environment is read in from_env, once.
        return (init_settings,)

    # --- create safety (lost creates, shared API keys) ---
    # This deployment's name in every custom_id (a-z0-9, up to 16); empty: one
    # made up once and kept in the database, so every worker on it agrees.
    deployment: str = ""

    # --- HTTP intake (`batchline serve`) ---
    # Comma-separated sha256 hex digests of accepted bearer tokens, each optionally
    # scoped to one tenant tag: `<hex>` or `<hex>:<tag>=<value>`. Empty: serve refuses to start.
    http_tokens: str = Field(default="", repr=False)
    # Largest single-request body, and largest line of a JSONL bulk body, in bytes.
    http_max_body_bytes: int = 32_000_000
    # Largest JSONL bulk body in bytes (it is streamed; this bounds one call's work).
    http_max_bulk_bytes: int = 256_000_000
    # host:port `batchline serve` listens on.
    http_bind: str = "127.0.0.1:8080"

    # --- dashboard (`batchline dashboard`) ---
    # Basic auth as Flower takes it: user:password, comma-separated for several.
    dashboard_basic_auth: str = Field(default="", repr=False)
    # Seconds between the pages' live refreshes.
    dashboard_refresh_seconds: float = 5.0
    # Seconds between beat's snapshots of the queue (the charts over time).
    dashboard_snapshot_seconds: float = Field(default=60.0, gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from BATCHLINE_* and ANTHROPIC_* variables (os.environ by default)."""
        env = os.environ if environ is None else environ
        return cls(**MappingEnvSource(cls, env)())

    @model_validator(mode="after")
    def _checked(self) -> Settings:
        self.validate()
        return self

    def validate(self) -> None:  # type: ignore[override]
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
            "max_result_line_bytes": self.max_result_line_bytes,
            "ingest_deadline_seconds": self.ingest_deadline_seconds,
            "ingest_concurrency": self.ingest_concurrency,
            "max_queue_bytes": self.max_queue_bytes,
            "redis_socket_timeout_seconds": self.redis_socket_timeout_seconds,
            "redis_connect_timeout_seconds": self.redis_connect_timeout_seconds,
            "http_max_body_bytes": self.http_max_body_bytes,
            "http_max_bulk_bytes": self.http_max_bulk_bytes,
            "sync_concurrency": self.sync_concurrency,
            "sync_timeout_seconds": self.sync_timeout_seconds,
            "deadline_scan_seconds": self.deadline_scan_seconds,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"BATCHLINE_{name.upper()} must be > 0, got {value}")
        at_least_zero = {
            "prime_min_group": self.prime_min_group,
            "clock_skew_seconds": self.clock_skew_seconds,
            "daily_spend_cap_usd": self.daily_spend_cap_usd,
            "max_wait_seconds": self.max_wait_seconds,
            "deadline_seconds": self.deadline_seconds,
            "sync_latency_seconds": self.sync_latency_seconds,
            "max_in_flight_requests": self.max_in_flight_requests,
        }
        for name, value in at_least_zero.items():
            if value < 0:
                raise SettingsError(f"BATCHLINE_{name.upper()} must be >= 0, got {value}")
        self._check_upper_limits()
        self._check_scheduling()
        self._check_http()
        if self.log_format not in ("json", "text"):
            raise SettingsError(
                f"BATCHLINE_LOG_FORMAT must be json or text, got {self.log_format!r}"
            )
        try:
            parse_by_tag(self.deadline_by_tag)
        except ValueError as exc:
            raise SettingsError(f"BATCHLINE_DEADLINE_BY_TAG: {exc}") from None
        if not self.celery_queue.strip():
            raise SettingsError("BATCHLINE_CELERY_QUEUE must be a non-empty queue name")
        if self.celery_queue == self.callback_queue:
            raise SettingsError(
                "BATCHLINE_CELERY_QUEUE and BATCHLINE_CALLBACK_QUEUE must differ: "
                "callbacks are your application's tasks"
            )

    def deadline_defaults(self) -> DeadlineDefaults:
        return DeadlineDefaults(parse_by_tag(self.deadline_by_tag), self.deadline_seconds)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, checked like any other Settings.

        Fields not set before stay unset (`model_fields_set`), so callers can
        still tell a configured value from a default."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**kept, **changes})

    def to_env(self) -> dict[str, str]:
        """Every setting as the environment variable that sets it (what from_env reads)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                env[variable_name(name)] = str(value)
        return env

    def configured(self, field: str) -> bool:
        """Whether this field was given (environment or caller), not left at its default."""
        return field in self.model_fields_set

    def _check_http(self) -> None:
        from batchline.domain.tokens import parse_tokens

        try:
            parse_tokens(self.http_tokens)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        host, _, port = self.http_bind.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise SettingsError(f"BATCHLINE_HTTP_BIND must be host:port, got {self.http_bind!r}")

    def _check_scheduling(self) -> None:
        try:
            parse_priority_waits(self.priority_max_wait)
            parse_share_weights(self.share_weights)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def _check_upper_limits(self) -> None:
        if self.ingest_deadline_seconds > MAX_INGEST_DEADLINE_SECONDS:
            raise SettingsError(
                f"BATCHLINE_INGEST_DEADLINE_SECONDS must be <= {MAX_INGEST_DEADLINE_SECONDS} "
                "(below the Celery task time limit)"
            )
        if not 0 < self.redis_memory_high_water <= 1:
            raise SettingsError(
                "BATCHLINE_REDIS_MEMORY_HIGH_WATER must be in (0, 1], "
                f"got {self.redis_memory_high_water}"
            )
        if self.deployment and not DEPLOYMENT_PATTERN.match(self.deployment):
            raise SettingsError(
                f"BATCHLINE_DEPLOYMENT must be 1 to 16 of a-z and 0-9, got {self.deployment!r}"
            )
        _check_dashboard(self.dashboard_basic_auth, self.dashboard_refresh_seconds)
        if self.max_batch_requests > 100_000:
            raise SettingsError("BATCHLINE_MAX_BATCH_REQUESTS must be <= 100000 (the API's limit)")
        if self.max_batch_bytes > 256_000_000:
            raise SettingsError("BATCHLINE_MAX_BATCH_BYTES must be <= 256000000 (the API's limit)")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def variable_name(field: str) -> str:
    """The environment variable a Settings field is read from."""
    return SDK_VARIABLES.get(field, f"{ENV_PREFIX}{field.upper()}")


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SettingsError):
        return str(cause)
    loc = error["loc"][0] if error["loc"] else ""
    var = variable_name(str(loc)) if str(loc) in Settings.model_fields else str(loc)
    kind = {
        "int_parsing": "a whole number",
        "int_from_float": "a whole number",
        "float_parsing": "a number",
        "finite_number": "a finite number",
        "bool_parsing": "true or false",
    }.get(error["type"], f"valid ({error['msg']})")
    return f"{var} must be {kind}, got {redact(str(error.get('input')))!r:.80}"


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
            f"{var} must be a URL with scheme {' or '.join(schemes)}, got {redact(url)!r}"
        )


def redact(url: str) -> str:
    """A URL fit to print or log: its password replaced."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url
    return url.replace(f":{password}@", ":***@") if password else url
