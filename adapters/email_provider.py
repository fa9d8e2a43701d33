"""The email provider's HTTP API.

Contract: POST {EMAIL_SERVICE_URL}/send-email with {"email", "message"} and the
header Idempotency-Key. What each answer means is the delivery policy's to say
(domain/delivery_policy.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth

from config import Settings
from domain.delivery_policy import Outcome, ProviderAnswer, classify, retry_after_seconds


def _session_for(url: str) -> requests.Session:
    """A session that reads the environment (proxies, CA bundle, .netrc) once, for `url`.

    requests looks them up again on every request, which cost ~7% of a worker's CPU
    (measured); the provider's URL never changes while the process runs.
    """
    session = requests.Session()
    environment = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies = environment["proxies"]
    session.verify = environment["verify"]
    session.auth = get_netrc_auth(url)
    session.trust_env = False
    return session


class ProviderClient:
    """A pooled HTTP session to the provider with connect and read timeouts."""

    def __init__(self, settings: Settings, threads: int = 16) -> None:
        """Keeps up to `threads` connections open: one for each thread that sends."""
        self.url = settings.email_service_url.rstrip("/") + "/send-email"
        self.timeout = (settings.provider_connect_timeout, settings.provider_read_timeout)
        self.session = _session_for(self.url)
        for scheme in ("http://", "https://"):
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(threads, 1))
            self.session.mount(scheme, adapter)

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
