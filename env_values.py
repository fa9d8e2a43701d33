"""Reading settings from environment variables: one parser per kind of value, each
raising a ConfigError that names the variable. config.py picks the parser of each
setting by its type."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from email.utils import formataddr, getaddresses, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def parse_int(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def parse_float(name: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def parse_time(name: str, raw: str) -> time:
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", raw.strip())
    if not match:
        raise ConfigError(f"{name} must be a local time HH:MM, got {raw!r}")
    return time(int(match[1]), int(match[2]))


DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, raw: str) -> timedelta:
    """Accept `5ms`, `90s`, `30m`, `48h`, `400d`, or a bare number of seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|[smhd]?)", raw.strip().lower())
    if not match:
        raise ConfigError(f"{name} must be a duration such as 48h or 30m, got {raw!r}")
    return timedelta(seconds=float(match[1]) * DURATION_UNITS[match[2] or "s"])


def parse_str(name: str, raw: str) -> str:
    return raw.strip()


def parse_tokens(name: str, raw: str) -> tuple[str, ...]:
    """A list separated by commas or newlines: add the new token, then drop the old one."""
    tokens = tuple(part.strip() for part in re.split(r"[,\n]", raw) if part.strip())
    if any(any(char.isspace() for char in token) for token in tokens):
        raise ConfigError(f"{name} must hold tokens without spaces, separated by commas")
    return tokens


TOKEN_LISTS = ("api_tokens", "api_read_tokens", "metrics_tokens", "webhook_secret")


def tokens_from_files(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
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
        values[setting] = parse_tokens(name, raw)
    return values


def parse_log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


URL_SCHEMES = {
    "RABBITMQ_URL": {"amqp", "amqps"},
    "REDIS_URL": {"redis", "rediss", "unix"},
    "EMAIL_SERVICE_URL": {"http", "https"},
    "PUBLIC_BASE_URL": {"http", "https"},
}


def check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES[name]:
        schemes = " or ".join(sorted(URL_SCHEMES[name]))
        raise ConfigError(f"{name} must be a {schemes} URL, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {url!r}") from None


# Addresses are separated by ";" (Dramatiq's own form) or by "," before the next
# address's scheme, so a comma inside one URL's query stays part of that URL.
ADDRESS_SEPARATOR = re.compile(r";|,(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")


def split_rabbitmq_url(raw: str) -> tuple[str, ...]:
    """Each broker address of RABBITMQ_URL in order: one URL, or several joined by , or ;."""
    return tuple(part.strip() for part in ADDRESS_SEPARATOR.split(raw) if part.strip())


def check_rabbitmq_url(name: str, raw: str) -> None:
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
        check_url(name, address)


def parse_log_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"json", "text"}:
        raise ConfigError(f"{name} must be json or text, got {raw!r}")
    return value


def check_database_url(name: str, url: str) -> None:
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


@dataclass(frozen=True)
class SmtpServer:
    """Where SMTP_URL says mail goes: `security` is "plain", "starttls" or "tls"."""

    security: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)


# scheme -> (security, default port): 25 for plain, 587 (submission) for STARTTLS,
# 465 (submissions) for TLS from the first byte.
SMTP_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


def _without_password(url: str) -> str:
    """`url` for a message: whatever lies between the user's `:` and the last `@` shown as
    ***, so a password holding an unencoded / ? # or @ (which urlsplit would take for a
    path, query or fragment) never shows either."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{separator}{userinfo.partition(':')[0]}:***@{host}"


def parse_smtp_url(name: str, url: str) -> SmtpServer:
    """`smtp://[user:password@]host[:port]`, `smtp+starttls://…` or `smtps://…`."""
    parts = urlsplit(url.strip())
    shown = _without_password(url.strip())
    if parts.scheme not in SMTP_SCHEMES:
        raise ConfigError(f"{name} must be an smtp, smtp+starttls or smtps URL, got {shown!r}")
    if not parts.hostname:
        raise ConfigError(f"{name} must name a host, got {shown!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{name} takes no path or query, got {shown!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {shown!r}") from None
    if (parts.username is None) != (parts.password is None) or "" in (
        parts.username,
        parts.password,
    ):
        raise ConfigError(f"{name} must give both a user and a password, or neither")
    security, default_port = SMTP_SCHEMES[parts.scheme]
    return SmtpServer(
        security,
        parts.hostname,
        port or default_port,
        unquote(parts.username) if parts.username is not None else None,
        unquote(parts.password) if parts.password is not None else None,
    )


def value_from_file(env: Mapping[str, str], variable: str) -> str | None:
    """`SMTP_URL_FILE=/run/secrets/smtp_url`: the value of `variable` read from a secret's
    file (surrounding whitespace dropped), or None when the _FILE variable is unset."""
    name = f"{variable}_FILE"
    path = env.get(name, "")
    if not path:
        return None
    if env.get(variable):
        raise ConfigError(f"set {variable} or {name}, not both")
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise ConfigError(f"{name} cannot be read: {error.strerror}") from None


def parse_mail_from(name: str, raw: str) -> tuple[str, str]:
    """`Name <address>` or a bare address: (the header as given, the address)."""
    if len(getaddresses([raw])) != 1:
        raise ConfigError(f"{name} must be one address, got several")
    display, address = parseaddr(raw.strip())
    local, _, domain = address.rpartition("@")
    if not local or not domain or ("." not in domain and domain != "localhost"):
        raise ConfigError(f"{name} must be an address such as 'Greetings <hi@example.com>'")
    if any(ord(char) < 32 for char in raw):
        raise ConfigError(f"{name} must be one line")
    return formataddr((display, address)), address


def parse_window(name: str, raw: str) -> tuple[time, time] | None:
    """`08:00-21:00`: the local hours a greeting may go out (opens, closes); `off`: None."""
    value = raw.strip().lower()
    if value == "off":
        return None
    match = re.fullmatch(r"(\d\d:\d\d)\s*-\s*(\d\d:\d\d)", value)
    if not match:
        raise ConfigError(f"{name} must be HH:MM-HH:MM (local hours) or off, got {raw!r}")
    opens, closes = parse_time(name, match[1]), parse_time(name, match[2])
    if opens >= closes:
        raise ConfigError(f"{name} must open before it closes on the same day, got {raw!r}")
    return opens, closes
