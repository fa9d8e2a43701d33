"""The `send_greeting` actor: one attempt to deliver one greeting.

What an answer means and what follows (sent, retry when, fail, expire, postpone) is
the delivery policy's (domain/delivery_policy.py); the database side is
delivery/attempts.py. The take and the record of a sent greeting go through the
process's batchers (tasks/batching.py), so the threads share their statements and
commits. Retries of provider failures live in the database, not in
Dramatiq: a failed send becomes RETRYING with its next attempt time and the
dispatcher queues it again when that time comes. (A Dramatiq delay would hold the
message unacknowledged in a worker, and RabbitMQ closes channels that keep a
delivery unacknowledged past its consumer timeout.)

Our own failures never use up a provider retry: anything that goes wrong between
taking the row and the provider's answer (Redis unreachable, a bug) puts the row
back as RETRYING without counting an attempt; a worker that dies leaves the row
SENDING, and recovery queues it again when the lease runs out, uncounted too.
"""

from __future__ import annotations

import logging
import time as clock
from datetime import date, datetime, timedelta

import dramatiq

from channels.guards import Admission, AdmissionVerdict
from config import Settings
from delivery import attempts as delivery
from delivery import wording
from domain.delivery_policy import (
    ChannelAnswer,
    Decision,
    Outcome,
    RetryPolicy,
    Verdict,
    before_call,
    deadline,
    postpone,
)
from domain.statuses import Status
from operations import metrics
from tasks import runtime
from tasks.runtime import WorkerResources

log = logging.getLogger(__name__)

# Dramatiq's own retries of this actor: only for errors that escape it, such as
# PostgreSQL unreachable while taking or recording the row (the row then waits in
# QUEUED or SENDING for its lease, and recovery queues it again). Not provider
# retries: those are MAX_RETRIES, counted in the database.
INFRASTRUCTURE_RETRIES = 3
_OUTCOME_NAMES = {
    Verdict.SENT: "sent",
    Verdict.RETRY: "retried",
    Verdict.FAIL: "failed",
    Verdict.EXPIRE: "expired",
}


class AttemptClock:
    """The database's clock at the start of the attempt, advanced by the local monotonic
    clock: leases and deadlines agree with the scheduler's whatever the hosts' skew."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.started = clock.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=clock.monotonic() - self.started)


def enqueue(message_id: int, occasion_date: date) -> None:
    """Publish one greeting for the workers (the scheduler's `Enqueue`)."""
    send_greeting.send(message_id, occasion_date.isoformat())


def retry_policy(settings: Settings) -> RetryPolicy:
    """The provider retry policy the settings describe."""
    return RetryPolicy(settings.max_retries, settings.retry_base_delay, settings.retry_max_delay)


def _ids(message: dict) -> dict:
    """The ids every log line about a greeting carries (never its text or email)."""
    return {
        "message_id": message["id"],
        "user_id": str(message["user_id"]),
        "idempotency_key": message["idempotency_key"],
    }


def _admission(resources: WorkerResources, send_deadline: datetime, now: AttemptClock) -> Admission:
    """Ask the breaker and the rate limit; wait while only the rate limit refuses, up to
    PROVIDER_RATE_LIMIT_WAIT and never past the greeting's deadline."""
    wait = resources.settings.provider_rate_limit_wait.total_seconds()
    limit_deadline = clock.monotonic() + wait
    while True:
        admission = resources.guard.admit()
        limited = admission.verdict is AdmissionVerdict.RATE_LIMITED
        if not limited or clock.monotonic() > limit_deadline or now.now() >= send_deadline:
            return admission
        clock.sleep(0.02)


def _deliver(resources: WorkerResources, message: dict) -> ChannelAnswer:
    greeting = wording.outgoing(message, message["wording"], message["unsubscribe_url"])
    started = clock.perf_counter()
    try:
        return resources.channel.deliver(greeting)
    finally:
        metrics.observe_provider_call(clock.perf_counter() - started)


def _count_for_breaker(
    resources: WorkerResources, admission: Admission, answer: ChannelAnswer
) -> None:
    """Tell the breaker how the call went; the answer stands even if Redis cannot hear it."""
    try:
        resources.guard.record(admission, transient_failure=answer.outcome is Outcome.RETRY_LATER)
    except Exception:  # the provider has answered: the answer is recorded, not this
        log.warning("provider answer not counted by the circuit breaker", exc_info=True)


def _attempt(
    resources: WorkerResources, message: dict, send_deadline: datetime, now: AttemptClock
) -> tuple[Decision, ChannelAnswer | None]:
    """Breaker and rate limit, provider call; the decision that follows."""
    settings = resources.settings
    if message["window_opens_at"] is not None:
        # Taken outside the recipient's delivery window (a redelivered message, an
        # operator's retry): it waits for the window to open, no retry used.
        at = now.now()
        wait = message["window_opens_at"] - at
        return postpone(at, wait, send_deadline, "outside the delivery window"), None
    admission = _admission(resources, send_deadline, now)
    if admission.verdict is AdmissionVerdict.RATE_LIMITED:
        wait = settings.breaker_reset_timeout
        return postpone(now.now(), wait, send_deadline, "provider rate limit"), None
    if admission.verdict is AdmissionVerdict.OPEN:
        # An open breaker refuses the call without reaching the provider; once its
        # reset timeout has passed it lets one trial call through (half-open).
        wait = settings.breaker_reset_timeout
        return postpone(now.now(), wait, send_deadline, "provider circuit breaker open"), None
    # The wait above may have taken the greeting past its deadline or most of its lease.
    # (A half-open breaker's trial claim not used here expires by itself.)
    refusal = before_call(
        now.now(),
        send_deadline,
        message["locked_until"],
        settings.provider_call_timeout,
        settings.dependency_retry_delay,
    )
    if refusal is not None:
        return refusal, None
    answer = _deliver(resources, message)
    _count_for_breaker(resources, admission, answer)
    decision = retry_policy(settings).decide(
        answer, message["retry_count"], now.now(), send_deadline
    )
    return decision, answer


def _take(
    resources: WorkerResources, message_id: int, occasion_date: str | None
) -> tuple[dict | None, AttemptClock]:
    day = date.fromisoformat(occasion_date) if occasion_date else None
    message = resources.takes.submit((message_id, day), resources.batch_timeout())
    start = message["database_now"] if message is not None else datetime.now().astimezone()
    return message, AttemptClock(start)


@dramatiq.actor(
    queue_name=Settings.from_env().queue_name,
    max_retries=INFRASTRUCTURE_RETRIES,
    min_backoff=1_000,
    max_backoff=30_000,
)
def send_greeting(message_id: int, occasion_date: str | None = None) -> None:
    """Send one greeting; a duplicate or redelivered message for it does nothing.

    `occasion_date` (ISO) names the row's partition; messages without it still work.
    """
    resources = runtime.current()
    settings = resources.settings
    message, now = _take(resources, message_id, occasion_date)
    if message is None:
        log.info(
            "greeting not QUEUED any more, skipped message_id=%s",
            message_id,
            extra={"message_id": message_id},
        )
        return
    if message["status"] in (Status.CANCELLED, Status.EXPIRED):
        metrics.count_send(message["status"].lower())
        log.info(
            "greeting %s before the send message_id=%s",
            message["status"].lower(),
            message_id,
            extra=_ids(message),
        )
        return
    send_deadline = deadline(
        message["scheduled_send_time"], message["lateness_from"], settings.max_lateness
    )
    try:
        message["unsubscribe_url"] = wording.unsubscribe_url(
            message, settings.unsubscribe_base_url, settings.unsubscribe_signing_secret
        )
        message["wording"] = wording.wording_for(message, message["unsubscribe_url"])
        decision, answer = _attempt(resources, message, send_deadline, now)
    except Exception as error:  # our failure, not the provider's: put the row back
        log.exception("send attempt failed inside the worker message_id=%s", message_id)
        reason = f"worker could not send: {type(error).__name__}: {error}"
        wait = settings.dependency_retry_delay
        decision, answer = postpone(now.now(), wait, send_deadline, reason), None
    _record(resources, message, decision, answer, now.now())


def _record(
    resources: WorkerResources,
    message: dict,
    decision: Decision,
    answer: ChannelAnswer | None,
    now: datetime,
) -> None:
    """Store the decision; count and log it."""
    recorded = delivery.record_outcome(
        resources.pool,
        message,
        decision,
        answer,
        now,
        resources.settings.send_time,
        record_sent=lambda sent: resources.sends.submit(sent, resources.batch_timeout()),
    )
    ids = _ids(message)
    if not recorded:
        log.warning("greeting lease lost before recording message_id=%s", message["id"], extra=ids)
        return
    if decision.verdict is Verdict.RETRY and not decision.counts_as_attempt:
        metrics.count_send("postponed")
        log.warning(
            "greeting postponed message_id=%s reason=%s", message["id"], decision.reason, extra=ids
        )
        return
    metrics.count_send(_OUTCOME_NAMES[decision.verdict])
    if decision.verdict is Verdict.SENT:
        metrics.observe_lateness((now - message["scheduled_send_time"]).total_seconds())
    status = answer.code if answer else None
    log.info(
        "greeting %s message_id=%s key=%s status=%s",
        decision.verdict.value,
        message["id"],
        message["idempotency_key"],
        status,
        extra={**ids, "provider_status": status},
    )
