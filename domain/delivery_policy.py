"""The delivery policy: what the provider's answer means and what happens next.

Pure code: no I/O, time is an argument. The worker asks `RetryPolicy.decide` after
each provider call and `postpone` when it could not call (breaker open, rate limit,
one of our own dependencies unreachable); dispatch, recovery and the worker all
measure lateness with `deadline`.

Provider contract: any 2xx is success; 5xx, 429, timeouts and connection errors are
transient (try again later); any other 4xx is permanent.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime


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


# A Retry-After longer than this is read as this: it lies past any greeting's deadline
# either way (so the greeting expires), and now + the wait stays a datetime. A header may
# say 10^20 seconds, or a date in year 9999 that the hosts' clock skew pushes past it.
RETRY_AFTER_LIMIT_SECONDS = timedelta(days=3660).total_seconds()


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or an HTTP date), if any,
    at most RETRY_AFTER_LIMIT_SECONDS."""
    if not header:
        return None
    value = header.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_LIMIT_SECONDS)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_LIMIT_SECONDS)


def deadline(
    scheduled_send_time: datetime, lateness_from: datetime | None, max_lateness: timedelta
) -> datetime:
    """The last instant a greeting may reach the provider.

    Lateness counts from the scheduled send time, or from an operator's retry
    (`lateness_from`), whatever state the greeting is in.
    """
    return (lateness_from or scheduled_send_time) + max_lateness


class Verdict(enum.Enum):
    SENT = "SENT"
    RETRY = "RETRYING"
    FAIL = "FAILED"
    EXPIRE = "EXPIRED"


@dataclass(frozen=True)
class Decision:
    """What to record after an attempt (or a postponement) of one greeting."""

    verdict: Verdict
    next_attempt_at: datetime | None = None
    # Only a provider's answer uses up a retry; our own trouble never does.
    counts_as_attempt: bool = True
    reason: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_retries` retries, exponential backoff with jitter, Retry-After honoured,
    and never an attempt after the greeting's deadline."""

    max_retries: int
    base_delay: timedelta
    max_delay: timedelta

    def backoff(self, retries_so_far: int, retry_after: float | None) -> timedelta:
        """base * 2^n, capped, times a jitter in [0.5, 1.5); never sooner than Retry-After."""
        exponential = self.base_delay * (2 ** min(retries_so_far, 32))
        delay = min(self.max_delay, exponential) * random.uniform(0.5, 1.5)  # noqa: S311  jitter
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        return delay

    def decide(
        self,
        answer: ProviderAnswer,
        retries_so_far: int,
        now: datetime,
        send_deadline: datetime | None = None,
    ) -> Decision:
        """What to do with a greeting after the provider's answer."""
        if answer.outcome is Outcome.SENT:
            return Decision(Verdict.SENT)
        if answer.outcome is Outcome.PERMANENT:
            return Decision(Verdict.FAIL, reason=answer.error or "permanent failure")
        if retries_so_far >= self.max_retries:
            return Decision(Verdict.FAIL, reason=answer.error or "retries exhausted")
        next_attempt_at = now + self.backoff(retries_so_far, answer.retry_after_seconds)
        if send_deadline is not None and next_attempt_at > send_deadline:
            # The provider may not be asked again in time (its Retry-After, or our
            # backoff, falls after the deadline): late greetings are not sent.
            return Decision(
                Verdict.EXPIRE,
                reason=f"{answer.error or 'transient failure'}; next attempt after the deadline",
            )
        return Decision(Verdict.RETRY, next_attempt_at, reason=answer.error or "transient failure")


def postpone(now: datetime, wait: timedelta, send_deadline: datetime, reason: str) -> Decision:
    """Try again after `wait` without using up a retry; never later than the deadline."""
    if now >= send_deadline:
        return Decision(Verdict.EXPIRE, reason=f"{reason}; deadline passed")
    return Decision(
        Verdict.RETRY, min(now + wait, send_deadline), counts_as_attempt=False, reason=reason
    )


def before_call(
    now: datetime,
    send_deadline: datetime,
    lease_end: datetime,
    call_timeout: timedelta,
    wait: timedelta,
) -> Decision | None:
    """None when the provider may be called now; else what to record instead.

    Asked after the wait for the breaker and the rate limit, right before the call: a
    call starting after the deadline would be late (EXPIRED), and one that could still
    be under way when the lease ends would overlap the resend recovery then makes.
    """
    if now >= send_deadline:
        return Decision(Verdict.EXPIRE, reason="deadline passed before the provider was called")
    if now + call_timeout > lease_end:
        return postpone(now, wait, send_deadline, "lease too short for the provider call")
    return None
