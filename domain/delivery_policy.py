"""The delivery policy: what a channel's answer means and what happens next.

Pure code: no I/O, time is an argument. The one home of retries: the worker asks
`RetryPolicy.decide` after each delivery attempt, `before_call` right before one, and
`postpone` when it could not attempt (breaker open, rate limit, one of our own
dependencies unreachable); dispatch, recovery and the worker all measure lateness with
`deadline`.

A channel (channels/) answers in these words only: delivered, retry later (perhaps
after a wait it asks for), or refused. What its transport said (an HTTP status, an
SMTP reply) it keeps for the record, never for this policy to read.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.statuses import Status


class Outcome(enum.Enum):
    """A channel's answer for one greeting."""

    DELIVERED = "delivered"
    RETRY_LATER = "retry later"  # our side or theirs may do better later
    REFUSED = "refused"  # for good: trying again cannot help


@dataclass(frozen=True)
class ChannelAnswer:
    """What a channel answered for one greeting.

    `reason` says why it was not delivered; `retry_after` is the wait (seconds) the
    channel asked for; `code` and `detail` are the transport's own answer (status
    code, body or reply), stored with the greeting for operators. `no_such_recipient`
    marks a refusal because the address has no mailbox (SMTP 5.1.1 and its kin).
    """

    outcome: Outcome
    reason: str | None = None
    retry_after: float | None = None
    code: int | None = None
    detail: str | None = None
    no_such_recipient: bool = False


# A wait longer than this is read as this: it lies past any greeting's deadline either
# way (so the greeting expires), and now + the wait stays a datetime. A channel may be
# asked for 10^20 seconds, or until year 9999 (which the hosts' clock skew pushes past).
RETRY_AFTER_LIMIT_SECONDS = timedelta(days=3660).total_seconds()


def deadline(
    scheduled_send_time: datetime, lateness_from: datetime | None, max_lateness: timedelta
) -> datetime:
    """The last instant a greeting may reach the provider.

    Lateness counts from the scheduled send time, or from an operator's retry
    (`lateness_from`), whatever state the greeting is in.
    """
    return (lateness_from or scheduled_send_time) + max_lateness


class Verdict(enum.Enum):
    """What becomes of a greeting after an attempt: the status it is recorded with."""

    SENT = Status.SENT
    RETRY = Status.RETRYING
    FAIL = Status.FAILED
    EXPIRE = Status.EXPIRED


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
        """base * 2^n, capped, times a jitter in [0.5, 1.5); never sooner than the wait
        the channel asked for (read as at most RETRY_AFTER_LIMIT_SECONDS)."""
        exponential = self.base_delay * (2 ** min(retries_so_far, 32))
        delay = min(self.max_delay, exponential) * random.uniform(0.5, 1.5)  # noqa: S311  jitter
        if retry_after is not None:
            asked = min(max(retry_after, 0.0), RETRY_AFTER_LIMIT_SECONDS)
            delay = max(delay, timedelta(seconds=asked))
        return delay

    def decide(
        self,
        answer: ChannelAnswer,
        retries_so_far: int,
        now: datetime,
        send_deadline: datetime | None = None,
    ) -> Decision:
        """What to do with a greeting after the channel's answer."""
        if answer.outcome is Outcome.DELIVERED:
            return Decision(Verdict.SENT)
        if answer.outcome is Outcome.REFUSED:
            return Decision(Verdict.FAIL, reason=answer.reason or "refused")
        if retries_so_far >= self.max_retries:
            return Decision(Verdict.FAIL, reason=answer.reason or "retries exhausted")
        next_attempt_at = now + self.backoff(retries_so_far, answer.retry_after)
        if send_deadline is not None and next_attempt_at > send_deadline:
            # The channel may not be asked again in time (the wait it asked for, or our
            # backoff, falls after the deadline): late greetings are not sent.
            return Decision(
                Verdict.EXPIRE,
                reason=f"{answer.reason or 'transient failure'}; next attempt after the deadline",
            )
        return Decision(Verdict.RETRY, next_attempt_at, reason=answer.reason or "transient failure")


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
