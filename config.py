"""Settings read from the environment, with defaults that work on a local machine.

Every process (api, worker, scheduler, CLI) builds one `Settings` with
`Settings.from_env()`; tests pass overrides. A bad value stops start-up with a
`ConfigError` that names the variable, instead of failing later and obscurely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from env_values import (
    ConfigError,
    SmtpServer,
    check_database_url,
    check_rabbitmq_url,
    check_url,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int,
    parse_log_format,
    parse_log_level,
    parse_mail_from,
    parse_smtp_url,
    parse_str,
    parse_time,
    parse_tokens,
    parse_window,
    split_rabbitmq_url,
    tokens_from_files,
    value_from_file,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/birthday"
DEFAULT_MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "sql" / "migrations")
MIN_TOKEN_LENGTH = 16
LOCAL_BASE_URL = "http://127.0.0.1:8000"
# Loopback only (no tokens set, every write open anyway); start-up asks for a real one.
LOCAL_UNSUBSCRIBE_SECRET = "birthday-local-unsubscribe-links"  # noqa: S105
# The local provider signs its webhooks with this one by default (provider/events.py).
LOCAL_WEBHOOK_SECRET = "birthday-local-webhook-secret"  # noqa: S105


@dataclass(frozen=True)
class Settings:
    # Units: a timedelta where the variable takes a duration with its unit ("30s",
    # "10m"); otherwise the unit is in the name (_seconds, _ms, _months, _bytes) or
    # beside the field. The three spellings follow the environment variables operators
    # already set, which keep their names and formats.
    database_url: str = DEFAULT_DATABASE_URL
    migrations_dir: str = DEFAULT_MIGRATIONS_DIR
    db_pool_min_size: int = 2
    db_pool_max_size: int = 20
    db_pool_max_idle: float = 30.0  # seconds
    db_pool_timeout: float = 5.0  # seconds
    db_connect_timeout: int = 2  # seconds (libpq's connect_timeout)
    db_reconnect_timeout: float = 5.0  # seconds
    db_statement_timeout_ms: int = 30_000
    health_db_timeout: float = 2.0  # seconds
    sql_log: bool = False
    send_time: time = time(9, 0)
    # The recipient's local hours a greeting may reach the provider: "HH:MM-HH:MM" or
    # "off" (any hour).
    delivery_window: str = "08:00-21:00"
    max_lateness: timedelta = timedelta(hours=48)
    message_retention_months: int = 13
    partitions_ahead: int = 12
    # How long partition maintenance may wait for a lock on message_logs (while it
    # waits, queries that conflict with it wait too), and when the scheduler tries
    # again after giving up.
    partition_lock_timeout: timedelta = timedelta(seconds=2)
    partition_retry_interval_seconds: int = 3600
    log_level: str = "INFO"
    log_format: str = "json"
    # Tokens stay out of repr(): a logged Settings object must not carry them.
    api_token: str | None = field(default=None, repr=False)
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    api_read_tokens: tuple[str, ...] = field(default=(), repr=False)
    metrics_tokens: tuple[str, ...] = field(default=(), repr=False)
    allow_anonymous: bool = False
    # Where people reach the API from outside: greetings carry a one-click unsubscribe
    # link to it, signed with UNSUBSCRIBE_SECRET. Both required once tokens are set;
    # without tokens (loopback) the API's local address and a fixed local secret.
    public_base_url: str | None = None
    unsubscribe_secret: str | None = field(default=None, repr=False)
    # Secrets the provider signs its webhooks with (several while one is rotated).
    webhook_secret: tuple[str, ...] = field(default=(), repr=False)
    max_request_bytes: int = 64 * 1024
    # POST /users/import: its own limits (the body is streamed, never held whole).
    import_max_rows: int = 1_000_000
    import_max_bytes: int = 512 * 1024 * 1024
    # How long each statement of an import may run (the COPY of a body lasts as long as
    # its upload); DB_STATEMENT_TIMEOUT_MS bounds every other statement.
    import_timeout: timedelta = timedelta(minutes=30)
    idempotency_key_retention: timedelta = timedelta(hours=24)
    idempotency_stale_after: timedelta = timedelta(seconds=60)
    # Read here only to check IDEMPOTENCY_STALE_AFTER against it; deploy/gunicorn.conf.py
    # reads the same variable (with the same default) for gunicorn's worker timeout.
    gunicorn_timeout: int = 30  # seconds
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The channel greetings go out through (channels/: "http", the email API, or
    # "smtp", a mail server).
    delivery_channel: str = "http"
    email_service_url: str = "http://127.0.0.1:8025"
    # The mail server of the smtp channel; its password stays out of repr().
    smtp_url: str = field(default="smtp://127.0.0.1:1025", repr=False)
    smtp_ca_file: str | None = None  # more certificate authorities to trust, PEM
    mail_from: str = "Birthday Greetings <greetings@localhost>"
    queue_name: str = "greetings"
    provider_rate_limit: int = 50  # sends per second, all workers together
    # How long a send waits for room in the rate limit before it is postponed.
    provider_rate_limit_wait: timedelta = timedelta(seconds=30)
    provider_connect_timeout: float = 2.0  # seconds
    provider_read_timeout: float = 10.0  # seconds
    max_retries: int = 5
    retry_base_delay: timedelta = timedelta(seconds=30)
    retry_max_delay: timedelta = timedelta(hours=1)
    breaker_fail_max: int = 5
    breaker_reset_timeout: timedelta = timedelta(seconds=30)
    # A send put back because one of our own dependencies failed (Redis, a bug)
    # is due again after this; it uses up no provider retry.
    dependency_retry_delay: timedelta = timedelta(seconds=15)
    dispatch_batch_size: int = 500
    # How long a worker's batch of takes or of recorded sends waits for more threads'
    # rows when the worker is busy (tasks/batching.py); 0 runs what already waits.
    worker_batch_linger: timedelta = timedelta(milliseconds=20)
    queued_lease: timedelta = timedelta(minutes=10)
    sending_lease: timedelta = timedelta(minutes=2)
    dispatch_interval_seconds: int = 30
    recovery_interval_seconds: int = 300
    planning_interval_seconds: int = 3600
    scheduler_metrics_port: int = 9200

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from `environ` (default: os.environ), then apply overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name = setting.name.upper()
            if name in env and env[name] != "":
                values[setting.name] = _PARSERS[setting.name](name, env[name])
        values.update(tokens_from_files(env))
        for secret in ("SMTP_URL", "UNSUBSCRIBE_SECRET"):
            value = value_from_file(env, secret)
            if value is not None:
                values[secret.lower()] = value
        values.update(_parse_text_overrides(overrides))
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def provider_call_timeout(self) -> timedelta:
        """The longest one provider call may take: connect, then read."""
        return timedelta(seconds=self.provider_connect_timeout + self.provider_read_timeout)

    @property
    def unsubscribe_base_url(self) -> str:
        """PUBLIC_BASE_URL, or the API's local address when none is set (loopback)."""
        return (self.public_base_url or LOCAL_BASE_URL).rstrip("/")

    @property
    def unsubscribe_signing_secret(self) -> str:
        """UNSUBSCRIBE_SECRET, or a fixed local one when none is set (no tokens: loopback,
        where every write is open anyway)."""
        return self.unsubscribe_secret or LOCAL_UNSUBSCRIBE_SECRET

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """WEBHOOK_SECRET's list; without it, the local provider's secret on loopback (no
        tokens) and none once tokens are set (POST /webhooks/provider then refuses all)."""
        if self.webhook_secret:
            return self.webhook_secret
        return () if self.requires_token else (LOCAL_WEBHOOK_SECRET,)

    @property
    def delivery_hours(self) -> tuple[time, time] | None:
        """DELIVERY_WINDOW as (opens, closes), local; None when it is off."""
        return parse_window("DELIVERY_WINDOW", self.delivery_window)

    @property
    def smtp_server(self) -> SmtpServer:
        """The mail server SMTP_URL names."""
        return parse_smtp_url("SMTP_URL", self.smtp_url)

    @property
    def mail_sender(self) -> tuple[str, str]:
        """MAIL_FROM as a From header and as the envelope's sender address."""
        return parse_mail_from("MAIL_FROM", self.mail_from)

    @property
    def longest_send_attempt(self) -> timedelta:
        """The longest a worker holds a greeting between its take and the provider's
        answer: the wait for the rate limit, then the call."""
        return self.provider_rate_limit_wait + self.provider_call_timeout

    def validate(self) -> None:
        """Reject values that would only fail later (negative sizes, bad URLs)."""
        check_database_url("DATABASE_URL", self.database_url)
        if not Path(self.migrations_dir).is_dir():
            raise ConfigError(f"MIGRATIONS_DIR is not a directory: {self.migrations_dir!r}")
        if self.db_pool_min_size < 0:
            raise ConfigError("DB_POOL_MIN_SIZE must be >= 0")
        if self.db_pool_max_size < max(1, self.db_pool_min_size):
            raise ConfigError(
                "DB_POOL_MAX_SIZE must be >= 1 and >= DB_POOL_MIN_SIZE "
                f"(got {self.db_pool_max_size}, min is {self.db_pool_min_size})"
            )
        for name in (
            "db_pool_max_idle",
            "db_pool_timeout",
            "db_connect_timeout",
            "db_reconnect_timeout",
            "health_db_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()} must be > 0")
        if self.max_request_bytes < 1024:
            raise ConfigError("MAX_REQUEST_BYTES must be >= 1024")
        if self.import_max_rows < 1 or self.import_max_bytes < 1024:
            raise ConfigError("IMPORT_MAX_ROWS must be >= 1 and IMPORT_MAX_BYTES >= 1024")
        if self.import_timeout <= timedelta(0):
            raise ConfigError(
                f"IMPORT_TIMEOUT must be a duration above 0, got {self.import_timeout}"
            )
        if self.idempotency_key_retention <= timedelta(0):
            raise ConfigError("IDEMPOTENCY_KEY_RETENTION must be > 0")
        self._validate_tokens()
        self._check_unsubscribe_links()
        self._check_idempotency_stale_after()
        check_rabbitmq_url("RABBITMQ_URL", self.rabbitmq_url)
        for name in ("redis_url", "email_service_url"):
            check_url(name.upper(), getattr(self, name))
        for name in (
            "provider_rate_limit",
            "max_retries",
            "breaker_fail_max",
            "dispatch_batch_size",
            "dispatch_interval_seconds",
            "recovery_interval_seconds",
            "planning_interval_seconds",
            "partition_retry_interval_seconds",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.upper()} must be >= 1")
        if self.dispatch_interval_seconds > 3600:
            # Greetings falling due within the hour wake the scheduler (migration 0012);
            # later ones must be found by a regular dispatch before they are due.
            raise ConfigError("DISPATCH_INTERVAL_SECONDS must be <= 3600")
        if self.provider_connect_timeout <= 0 or self.provider_read_timeout <= 0:
            raise ConfigError("PROVIDER_CONNECT_TIMEOUT and PROVIDER_READ_TIMEOUT must be > 0")
        if self.worker_batch_linger > timedelta(seconds=1):
            raise ConfigError(
                f"WORKER_BATCH_LINGER must be at most 1s, got {self.worker_batch_linger}"
            )
        if self.provider_rate_limit_wait < timedelta(0):
            raise ConfigError("PROVIDER_RATE_LIMIT_WAIT must be >= 0")
        if self.sending_lease <= self.longest_send_attempt:
            # Recovery queues a SENDING row again once its lease ends: a lease shorter
            # than an attempt would start a second POST while the first still waits.
            raise ConfigError(
                f"SENDING_LEASE ({self.sending_lease}) must be longer than the longest send"
                f" attempt ({self.longest_send_attempt}): PROVIDER_RATE_LIMIT_WAIT +"
                " PROVIDER_CONNECT_TIMEOUT + PROVIDER_READ_TIMEOUT"
            )
        self._check_send_time_in_window()
        self.smtp_server  # noqa: B018 - each raises ConfigError naming its variable
        self.mail_sender  # noqa: B018
        if self.smtp_ca_file is not None and not Path(self.smtp_ca_file).is_file():
            raise ConfigError(f"SMTP_CA_FILE is not a file: {self.smtp_ca_file!r}")
        if self.dependency_retry_delay <= timedelta(0):
            raise ConfigError("DEPENDENCY_RETRY_DELAY must be > 0")
        if self.partitions_ahead < 1:
            raise ConfigError("PARTITIONS_AHEAD must be >= 1")
        if not timedelta(milliseconds=1) <= self.partition_lock_timeout <= timedelta(minutes=1):
            raise ConfigError("PARTITION_LOCK_TIMEOUT must be between 1ms and 1min")
        if self.message_retention_months < 1:
            raise ConfigError("MESSAGE_RETENTION_MONTHS must be >= 1")

    def _check_unsubscribe_links(self) -> None:
        """Links that reach the API from outside, signed with a secret of the operator's,
        once the API is not loopback-only (tokens set)."""
        if self.public_base_url is not None:
            check_url("PUBLIC_BASE_URL", self.public_base_url)
        if self.unsubscribe_secret is not None and len(self.unsubscribe_secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"UNSUBSCRIBE_SECRET must be at least {MIN_TOKEN_LENGTH} characters")
        if not self.requires_token:
            return
        missing = [
            name
            for name, value in (
                ("PUBLIC_BASE_URL", self.public_base_url),
                ("UNSUBSCRIBE_SECRET", self.unsubscribe_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} must be set when API tokens are: every greeting"
                " carries a one-click unsubscribe link to PUBLIC_BASE_URL, signed with"
                " UNSUBSCRIBE_SECRET (docs/recipients.md)"
            )

    def _check_send_time_in_window(self) -> None:
        """Greetings planned for SEND_TIME must be sendable at SEND_TIME."""
        hours = self.delivery_hours
        if hours is not None and not hours[0] <= self.send_time < hours[1]:
            raise ConfigError(
                f"SEND_TIME {self.send_time:%H:%M} is outside DELIVERY_WINDOW"
                f" {hours[0]:%H:%M}-{hours[1]:%H:%M}: greetings would wait for the next"
                " day's window; move SEND_TIME inside it, widen the window or set it off"
            )

    def _validate_tokens(self) -> None:
        """Each token long enough to resist guessing; none both read-only and read-write."""
        lists = {
            "API_TOKEN": (self.api_token,) if self.api_token is not None else (),
            "API_TOKENS": self.api_tokens,
            "API_READ_TOKENS": self.api_read_tokens,
            "METRICS_TOKENS": self.metrics_tokens,
            "WEBHOOK_SECRET": self.webhook_secret,
        }
        for name, tokens in lists.items():
            # The message names the variable, never the value.
            if any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
                raise ConfigError(
                    f"{name} must hold tokens of at least {MIN_TOKEN_LENGTH} characters"
                )
        if set(self.read_write_tokens) & set(self.api_read_tokens):
            raise ConfigError("a token cannot be in both API_READ_TOKENS and API_TOKENS/API_TOKEN")

    @property
    def rabbitmq_urls(self) -> tuple[str, ...]:
        """The broker addresses of RABBITMQ_URL, in the order they are tried."""
        return split_rabbitmq_url(self.rabbitmq_url)

    @property
    def read_write_tokens(self) -> tuple[str, ...]:
        """API_TOKENS plus the single API_TOKEN: each may read and write."""
        single = (self.api_token,) if self.api_token else ()
        return (*self.api_tokens, *single)

    @property
    def requires_token(self) -> bool:
        """Whether users and messages are closed to callers without a token."""
        return bool(self.read_write_tokens or self.api_read_tokens)

    def _check_idempotency_stale_after(self) -> None:
        """A live request's Idempotency-Key must not look abandoned while it still runs."""
        request_timeout = timedelta(
            seconds=max(self.gunicorn_timeout, self.db_statement_timeout_ms / 1000)
        )
        if self.idempotency_stale_after <= request_timeout:
            raise ConfigError(
                "IDEMPOTENCY_STALE_AFTER must be longer than a request may run "
                f"(GUNICORN_TIMEOUT and DB_STATEMENT_TIMEOUT_MS: {request_timeout}), "
                f"got {self.idempotency_stale_after}"
            )


# How each setting is read from its environment variable: by the field's type, except
# where a setting has a vocabulary of its own.
_PARSERS_BY_TYPE = {
    "str": parse_str,
    "str | None": parse_str,
    "int": parse_int,
    "float": parse_float,
    "bool": parse_bool,
    "time": parse_time,
    "timedelta": parse_duration,
    "tuple[str, ...]": parse_tokens,
}
_PARSERS_BY_NAME = {"log_level": parse_log_level, "log_format": parse_log_format}
_PARSERS = {
    setting.name: _PARSERS_BY_NAME.get(setting.name) or _PARSERS_BY_TYPE[str(setting.type)]
    for setting in fields(Settings)
}


def _parse_text_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """An override given as text (`{"API_TOKENS": "a,b"}`) is read as the variable would be."""
    parsed = dict(overrides)
    for name, value in overrides.items():
        parser = _PARSERS.get(name, parse_str)
        if isinstance(value, str) and parser is not parse_str:
            parsed[name] = parser(name.upper(), value)
    return parsed
