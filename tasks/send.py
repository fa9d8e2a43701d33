"""The `send_greeting` actor and the retry policy of greetings.

Retries of provider failures live in the database, not in Dramatiq: a failed send
becomes RETRYING with its next attempt time, and the dispatcher queues it again
when that time comes. (A Dramatiq delay would hold the message unacknowledged in a
worker, and RabbitMQ closes channels that keep a delivery unacknowledged past its
consumer timeout.) Dramatiq's own retries only cover unexpected errors, such as
the database being briefly unreachable; the actor is safe to run twice.
"""

from __future__ import annotations

import logging
import random
import time as clock
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dramatiq
import pybreaker

from config import Settings
from services import delivery
from services.delivery import Decision, Verdict
from tasks import metrics, runtime
from tasks.provider import Outcome, ProviderAnswer

log = logging.getLogger(__name__)

RATE_LIMIT_WAIT = timedelta(seconds=30)
_OUTCOME_NAMES = {Verdict.SENT: "sent", Verdict.RETRY: "retried", Verdict.FAIL: "failed"}


class TransientProviderError(Exception):
    """Raised inside the circuit breaker so that transient answers count as failures."""

    def __init__(self, answer: ProviderAnswer) -> None:
        super().__init__(answer.error)
        self.answer = answer


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_retries` retries, exponential backoff with jitter, Retry-After honoured."""

    max_retries: int
    base_delay: timedelta
    max_delay: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_retries, settings.retry_base_delay, settings.retry_max_delay)

    def backoff(self, retries_so_far: int, retry_after: float | None) -> timedelta:
        """base * 2^n, capped, times a jitter in [0.5, 1.5); never sooner than Retry-After."""
        exponential = self.base_delay * (2 ** min(retries_so_far, 32))
        delay = min(self.max_delay, exponential) * random.uniform(0.5, 1.5)  # noqa: S311  jitter
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        return delay

    def decide(self, answer: ProviderAnswer, retries_so_far: int, now: datetime) -> Decision:
        """What to do with a message after the provider's answer."""
        if answer.outcome is Outcome.SENT:
            return Decision(Verdict.SENT)
        if answer.outcome is Outcome.PERMANENT or retries_so_far >= self.max_retries:
            return Decision(Verdict.FAIL)
        delay = self.backoff(retries_so_far, answer.retry_after_seconds)
        return Decision(Verdict.RETRY, next_attempt_at=now + delay)


def _ids(message: dict) -> dict:
    """The ids every log line about a greeting carries (never its text or email)."""
    return {
        "message_id": message["id"],
        "user_id": str(message["user_id"]),
        "idempotency_key": message["idempotency_key"],
    }


def _wait_for_rate_limit() -> bool:
    """Block until the provider-wide rate limit lets one send through (bounded wait)."""
    deadline = clock.monotonic() + RATE_LIMIT_WAIT.total_seconds()
    limiter = runtime.rate_limiter()
    while clock.monotonic() < deadline:
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                return True
        clock.sleep(0.02)
    return False


def _call_provider(message: dict) -> ProviderAnswer:
    def attempt() -> ProviderAnswer:
        answer = runtime.provider().send(
            message["email"], message["message_content"], message["idempotency_key"]
        )
        if answer.outcome is Outcome.TRANSIENT:
            raise TransientProviderError(answer)
        return answer

    started = clock.perf_counter()
    try:
        return runtime.breaker().call(attempt)
    except TransientProviderError as failure:
        return failure.answer
    finally:
        metrics.observe_provider_call(clock.perf_counter() - started)


def _postpone(message: dict, reason: str, settings: Settings) -> None:
    """Back to RETRYING without counting an attempt (breaker open, rate limit)."""
    now = datetime.now(UTC)
    decision = Decision(
        Verdict.RETRY, next_attempt_at=now + settings.breaker_reset_timeout, counts_as_attempt=False
    )
    delivery.record_outcome(
        runtime.pool(), message, decision, None, None, reason, now, settings.send_time
    )
    metrics.count_send("postponed")
    log.warning(
        "greeting postponed message_id=%s reason=%s", message["id"], reason,
        extra=_ids(message),
    )  # fmt: skip


@dramatiq.actor(queue_name=Settings.from_env().queue_name, max_retries=3, min_backoff=1_000,
                max_backoff=30_000)  # fmt: skip
def send_greeting(message_id: int) -> None:
    """Send one greeting; a duplicate or redelivered message for it does nothing."""
    settings = runtime.settings()
    message = delivery.begin_send(
        runtime.pool(), message_id, datetime.now(UTC), settings.sending_lease
    )
    if message is None:
        log.info(
            "greeting not QUEUED any more, skipped message_id=%s", message_id,
            extra={"message_id": message_id},
        )  # fmt: skip
        return
    if message["status"] == "CANCELLED":
        metrics.count_send("cancelled")
        log.info("greeting cancelled: user changed message_id=%s", message_id, extra=_ids(message))
        return
    if not _wait_for_rate_limit():
        _postpone(message, "provider rate limit", settings)
        return
    try:
        # An open breaker refuses the call without reaching the provider; once its
        # reset timeout has passed it lets one call through to probe (half-open).
        answer = _call_provider(message)
    except pybreaker.CircuitBreakerError:
        _postpone(message, "provider circuit breaker open", settings)
        return
    now = datetime.now(UTC)
    decision = RetryPolicy.from_settings(settings).decide(answer, message["retry_count"], now)
    recorded = delivery.record_outcome(
        runtime.pool(), message, decision, answer.status_code, answer.body, answer.error, now,
        settings.send_time,
    )  # fmt: skip
    if recorded:
        metrics.count_send(_OUTCOME_NAMES[decision.verdict])
        if decision.verdict is Verdict.SENT:
            metrics.observe_lateness((now - message["scheduled_send_time"]).total_seconds())
    log.info(
        "greeting %s message_id=%s key=%s status=%s",
        decision.verdict.value, message_id, message["idempotency_key"], answer.status_code,
        extra={**_ids(message), "provider_status": answer.status_code},
    )  # fmt: skip
