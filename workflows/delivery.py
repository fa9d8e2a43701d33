"""The database side of one send attempt: take the greeting, then record what happened.

Two short steps per attempt, neither held open across the provider call: take the
row (QUEUED -> SENDING with a lease: one statement, committed as it runs), then record
the answer (or a postponement) and, in the same transaction, plan next year's
greeting when this one is finished.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from psycopg_pool import ConnectionPool

from db.queries import single_statement, transaction
from domain.delivery_policy import Decision, ProviderAnswer, Verdict
from domain.statuses import Status
from repositories import message_lifecycle
from services import planning


def begin_send(
    pool: ConnectionPool,
    message_id: int,
    now: datetime | None,
    *,
    occasion_date: date | None = None,
    lease: timedelta,
    max_lateness: timedelta,
    send_time: time,
) -> dict | None:
    """Take a QUEUED greeting for sending (SENDING with a lease); None if not ours to send.

    A greeting whose user was deleted or no longer has this occasion comes back
    CANCELLED; one past its deadline comes back EXPIRED (and next year's is planned).
    With `now` None the database's clock is used; the row then carries it as
    `database_now`.
    """
    with single_statement(pool) as conn:
        message = message_lifecycle.start_sending(
            conn, message_id, occasion_date, now, lease, max_lateness
        )
    if message is not None and message["status"] == Status.EXPIRED:
        # A transaction of its own: a crash in between leaves the user to the hourly
        # planning, as for the greetings the dispatcher expires.
        with transaction(pool) as conn:
            planning.plan_users(conn, [message["user_id"]], message["database_now"], send_time)
    return message


def record_outcome(
    pool: ConnectionPool,
    message: dict,
    decision: Decision,
    answer: ProviderAnswer | None,
    now: datetime,
    send_time: time,
) -> bool:
    """Store the decision and the provider's answer; a finished greeting plans next
    year's in the same transaction. False when the lease was no longer ours (recovery
    took the row over: the newer attempt records instead).
    """
    details = {
        "code": answer.status_code if answer else None,
        "body": answer.body if answer else None,
        "error": decision.reason,
    }
    message_id, day, lease = message["id"], message["occasion_date"], message["locked_until"]
    with transaction(pool) as conn:
        if decision.verdict is Verdict.RETRY:
            row = message_lifecycle.record_retry(
                conn,
                message_id,
                day,
                lease,
                now,
                decision.next_attempt_at,
                details,
                counts_as_attempt=decision.counts_as_attempt,
            )
            return row is not None
        if decision.verdict is Verdict.SENT:
            row = message_lifecycle.record_sent(
                conn, message_id, day, lease, now, details["code"], details["body"] or ""
            )
        else:
            final = Status.FAILED if decision.verdict is Verdict.FAIL else Status.EXPIRED
            row = message_lifecycle.record_finished(conn, message_id, day, lease, final, details)
        if row is not None:
            planning.plan_users(conn, [row["user_id"]], now, send_time)
        return row is not None
