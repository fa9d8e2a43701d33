"""The HTTP email API channel (the default): the seed's contract.

POST {EMAIL_SERVICE_URL}/send-email with {"email", "message", "subject"} (and "html"
when the greeting's template has an HTML body, and "unsubscribe_url", its one-click
link) and the header Idempotency-Key. Any 2xx is delivered; 5xx, 429, timeouts and
connection errors are "retry later" (a
Retry-After header, in seconds or as an HTTP date, is the wait asked for); any other
4xx is refused, and one whose JSON body says `"error": "no_such_recipient"` is reported
as an address with no mailbox. This module is the only one that knows these codes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth

from channels.port import OutgoingGreeting
from config import Settings
from domain.delivery_policy import ChannelAnswer, Outcome

NO_SUCH_RECIPIENT = "no_such_recipient"


def classify(status_code: int) -> Outcome:
    """What an HTTP answer of the email API means."""
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code >= 500 or status_code == 429:
        return Outcome.RETRY_LATER
    return Outcome.REFUSED


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or an HTTP date), if any; as
    large as the header says (inf past float's range): the retry policy caps any wait."""
    if not header:
        return None
    value = header.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def says_no_such_recipient(response: requests.Response) -> bool:
    """A refusal whose JSON body says `"error": "no_such_recipient"`: the address has no
    mailbox (the email API's counterpart of SMTP's 5.1.1)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == NO_SUCH_RECIPIENT


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


class HttpEmailChannel:
    """A pooled HTTP session to the email API with connect and read timeouts."""

    name = "http"

    def __init__(self, settings: Settings, threads: int = 16) -> None:
        """Keeps up to `threads` connections open: one for each thread that sends."""
        self.url = settings.email_service_url.rstrip("/") + "/send-email"
        self.timeout = (settings.provider_connect_timeout, settings.provider_read_timeout)
        self.session = _session_for(self.url)
        for scheme in ("http://", "https://"):
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(threads, 1))
            self.session.mount(scheme, adapter)

    def deliver(self, greeting: OutgoingGreeting) -> ChannelAnswer:
        """One POST; network trouble is an answer (retry later), never an exception."""
        payload = {"email": greeting.email, "message": greeting.text, "subject": greeting.subject}
        if greeting.html is not None:
            payload["html"] = greeting.html
        if greeting.unsubscribe_url is not None:
            payload["unsubscribe_url"] = greeting.unsubscribe_url
        try:
            response = self.session.post(
                self.url,
                json=payload,
                headers={"Idempotency-Key": greeting.idempotency_key},
                timeout=self.timeout,
            )
        except requests.Timeout as error:
            return ChannelAnswer(Outcome.RETRY_LATER, reason=f"timeout: {error}")
        except requests.RequestException as error:
            return ChannelAnswer(Outcome.RETRY_LATER, reason=f"connection error: {error}")
        outcome = classify(response.status_code)
        no_mailbox = outcome is Outcome.REFUSED and says_no_such_recipient(response)
        reason = (
            None if outcome is Outcome.DELIVERED else f"provider answered {response.status_code}"
        )
        return ChannelAnswer(
            outcome,
            reason=f"no such recipient: {reason}" if no_mailbox else reason,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC)),
            code=response.status_code,
            detail=response.text,
            no_such_recipient=no_mailbox,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()
