"""Settings read from the environment, with defaults that work on a local machine.

Every process (api, worker, scheduler, CLI) builds one `Settings` with
`Settings.from_env()`; tests pass overrides. A bad value stops start-up with a
`ConfigError` that names the variable, instead of failing later and obscurely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/birthday"
DEFAULT_MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "sql" / "migrations")
MIN_TOKEN_LENGTH = 16


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


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
    max_request_bytes: int = 64 * 1024
    idempotency_key_retention: timedelta = timedelta(hours=24)
    idempotency_stale_after: timedelta = timedelta(seconds=60)
    # Read here only to check IDEMPOTENCY_STALE_AFTER against it; deploy/gunicorn.conf.py
    # reads the same variable (with the same default) for gunicorn's worker timeout.
    gunicorn_timeout: int = 30  # seconds
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The channel greetings go out through (channels/: "http", the email API).
    delivery_channel: str = "http"
    email_service_url: str = "http://127.0.0.1:8025"
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
        values.update(_tokens_from_files(env))
        values.update(_parse_text_overrides(overrides))
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def provider_call_timeout(self) -> timedelta:
        """The longest one provider call may take: connect, then read."""
        return timedelta(seconds=self.provider_connect_timeout + self.provider_read_timeout)

    @property
    def longest_send_attempt(self) -> timedelta:
        """The longest a worker holds a greeting between its take and the provider's
        answer: the wait for the rate limit, then the call."""
        return self.provider_rate_limit_wait + self.provider_call_timeout

    def validate(self) -> None:
        """Reject values that would only fail later (negative sizes, bad URLs)."""
        _check_database_url("DATABASE_URL", self.database_url)
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
        if self.idempotency_key_retention <= timedelta(0):
            raise ConfigError("IDEMPOTENCY_KEY_RETENTION must be > 0")
        self._validate_tokens()
        self._check_idempotency_stale_after()
        _check_rabbitmq_url("RABBITMQ_URL", self.rabbitmq_url)
        for name in ("redis_url", "email_service_url"):
            _check_url(name.upper(), getattr(self, name))
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
        if self.dependency_retry_delay <= timedelta(0):
            raise ConfigError("DEPENDENCY_RETRY_DELAY must be > 0")
        if self.partitions_ahead < 1:
            raise ConfigError("PARTITIONS_AHEAD must be >= 1")
        if not timedelta(milliseconds=1) <= self.partition_lock_timeout <= timedelta(minutes=1):
            raise ConfigError("PARTITION_LOCK_TIMEOUT must be between 1ms and 1min")
        if self.message_retention_months < 1:
            raise ConfigError("MESSAGE_RETENTION_MONTHS must be >= 1")

    def _validate_tokens(self) -> None:
        """Each token long enough to resist guessing; none both read-only and read-write."""
        lists = {
            "API_TOKEN": (self.api_token,) if self.api_token is not None else (),
            "API_TOKENS": self.api_tokens,
            "API_READ_TOKENS": self.api_read_tokens,
            "METRICS_TOKENS": self.metrics_tokens,
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


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def _parse_time(name: str, raw: str) -> time:
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", raw.strip())
    if not match:
        raise ConfigError(f"{name} must be a local time HH:MM, got {raw!r}")
    return time(int(match[1]), int(match[2]))


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(name: str, raw: str) -> timedelta:
    """Accept `90s`, `30m`, `48h`, `400d`, or a bare number of seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", raw.strip().lower())
    if not match:
        raise ConfigError(f"{name} must be a duration such as 48h or 30m, got {raw!r}")
    return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2] or "s"])


def _parse_str(name: str, raw: str) -> str:
    return raw.strip()


def _parse_tokens(name: str, raw: str) -> tuple[str, ...]:
    """A list separated by commas or newlines: add the new token, then drop the old one."""
    tokens = tuple(part.strip() for part in re.split(r"[,\n]", raw) if part.strip())
    if any(any(char.isspace() for char in token) for token in tokens):
        raise ConfigError(f"{name} must hold tokens without spaces, separated by commas")
    return tokens


def _parse_text_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """An override given as text (`{"API_TOKENS": "a,b"}`) is read as the variable would be."""
    parsed = dict(overrides)
    for name, value in overrides.items():
        parser = _PARSERS.get(name, _parse_str)
        if isinstance(value, str) and parser is not _parse_str:
            parsed[name] = parser(name.upper(), value)
    return parsed


TOKEN_LISTS = ("api_tokens", "api_read_tokens", "metrics_tokens")


def _tokens_from_files(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """`API_TOKENS_FILE=/run/secrets/api_tokens`: the list read from a secret's file."""
    values = {}
    for setting in TOKEN_LISTS:
        name = f"{setting.upper()}_FILE"
        path = env.get(name, "")
        if not path:
            continue
        if env.get(setting.upper()):
            raise ConfigError(f"set {setting.upper()} or {name}, not both")
        try:
            raw = Path(path).read_text()
        except OSError as error:
            raise ConfigError(f"{name} cannot be read: {error.strerror}") from None
        values[setting] = _parse_tokens(name, raw)
    return values


def _parse_log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


_URL_SCHEMES = {
    "RABBITMQ_URL": {"amqp", "amqps"},
    "REDIS_URL": {"redis", "rediss", "unix"},
    "EMAIL_SERVICE_URL": {"http", "https"},
}


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES[name]:
        schemes = " or ".join(sorted(_URL_SCHEMES[name]))
        raise ConfigError(f"{name} must be a {schemes} URL, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {url!r}") from None


# Addresses are separated by ";" (Dramatiq's own form) or by "," before the next
# address's scheme, so a comma inside one URL's query stays part of that URL.
_ADDRESS_SEPARATOR = re.compile(r";|,(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")


def split_rabbitmq_url(raw: str) -> tuple[str, ...]:
    """Each broker address of RABBITMQ_URL in order: one URL, or several joined by , or ;."""
    return tuple(part.strip() for part in _ADDRESS_SEPARATOR.split(raw) if part.strip())


def _check_rabbitmq_url(name: str, raw: str) -> None:
    """Every address a full amqp(s) URL with a valid port; at least one."""
    addresses = split_rabbitmq_url(raw)
    if not addresses:
        raise ConfigError(f"{name} must name at least one amqp or amqps URL")
    for address in addresses:
        if "," in urlsplit(address).netloc:
            raise ConfigError(
                f"{name} must give each broker as a full URL (amqp://host:port/vhost),"
                f" separated by commas, got {address!r}"
            )
        _check_url(name, address)


def _parse_log_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"json", "text"}:
        raise ConfigError(f"{name} must be json or text, got {raw!r}")
    return value


def _check_database_url(name: str, url: str) -> None:
    # libpq's own parser, so a multi-host URL (h1:p1,h2:p2) or `host=a,b ...` passes.
    if "://" in url and urlsplit(url).scheme not in {"postgresql", "postgres"}:
        raise ConfigError(f"{name} must start with postgresql://, got {url!r}")
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError(f"{name} is not a PostgreSQL connection string: {url!r}") from None
    if not all(port.isdigit() for port in str(params.get("port", "")).split(",") if port):
        raise ConfigError(f"{name} has an invalid port: {url!r}")
    if not params.get("dbname"):
        raise ConfigError(f"{name} must name a database, got {url!r}")


# How each setting is read from its environment variable: by the field's type, except
# where a setting has a vocabulary of its own.
_PARSERS_BY_TYPE = {
    "str": _parse_str,
    "str | None": _parse_str,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "time": _parse_time,
    "timedelta": _parse_duration,
    "tuple[str, ...]": _parse_tokens,
}
_PARSERS_BY_NAME = {"log_level": _parse_log_level, "log_format": _parse_log_format}
_PARSERS = {
    setting.name: _PARSERS_BY_NAME.get(setting.name) or _PARSERS_BY_TYPE[str(setting.type)]
    for setting in fields(Settings)
}
