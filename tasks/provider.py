"""The email provider's HTTP API, and what each of its answers means for a greeting.

Contract: POST {EMAIL_SERVICE_URL}/send-email with {"email", "message"} and the
header Idempotency-Key. Any 2xx is success; 5xx, 429, timeouts and connection
errors are transient (try again later); any other 4xx is permanent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter

from config import Settings


class Outcome(enum.Enum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class ProviderAnswer:
    outcome: Outcome
    status_code: int | None
    body: str | None
    error: str | None = None
    retry_after_seconds: float | None = None


def classify(status_code: int) -> Outcome:
    """The one place that tells success, transient and permanent failures apart."""
    if 200 <= status_code < 300:
        return Outcome.SENT
    if status_code >= 500 or status_code == 429:
        return Outcome.TRANSIENT
    return Outcome.PERMANENT


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or an HTTP date), if any."""
    if not header:
        return None
    value = header.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class ProviderClient:
    """A pooled HTTP session to the provider with connect and read timeouts."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.email_service_url.rstrip("/") + "/send-email"
        self.timeout = (settings.provider_connect_timeout, settings.provider_read_timeout)
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        self.session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=16))

    def send(self, email: str, message: str, idempotency_key: str) -> ProviderAnswer:
        """One POST; never raises for network trouble, which is a transient answer."""
        try:
            response = self.session.post(
                self.url,
                json={"email": email, "message": message},
                headers={"Idempotency-Key": idempotency_key},
                timeout=self.timeout,
            )
        except requests.Timeout as error:
            return ProviderAnswer(Outcome.TRANSIENT, None, None, f"timeout: {error}")
        except requests.RequestException as error:
            return ProviderAnswer(Outcome.TRANSIENT, None, None, f"connection error: {error}")
        outcome = classify(response.status_code)
        return ProviderAnswer(
            outcome,
            response.status_code,
            response.text,
            None if outcome is Outcome.SENT else f"provider answered {response.status_code}",
            retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC)),
        )
