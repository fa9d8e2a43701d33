"""The database side of one send attempt: take the message, then record the answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from psycopg_pool import ConnectionPool

from db.queries import transaction
from repositories import message_lifecycle
from services import planning


class Verdict(enum.Enum):
    SENT = "SENT"
    RETRY = "RETRYING"
    FAIL = "FAILED"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None
    counts_as_attempt: bool = True


def begin_send(
    pool: ConnectionPool, message_id: int, now: datetime, lease: timedelta
) -> dict | None:
    """Take a QUEUED message for sending (SENDING with a lease); None if not ours to send.

    A message whose user was deleted or no longer has this occasion is CANCELLED
    instead and comes back with that status.
    """
    with transaction(pool) as conn:
        return message_lifecycle.start_sending(conn, message_id, now, lease)


def record_outcome(
    pool: ConnectionPool,
    message: dict,
    decision: Decision,
    status_code: int | None,
    body: str | None,
    error: str | None,
    now: datetime,
    send_time: time,
) -> bool:
    """Store the provider's answer; a finished greeting plans next year's in the same
    transaction. False when the row was no longer SENDING (its lease was taken over).
    """
    message_id = message["id"]
    with transaction(pool) as conn:
        if decision.verdict is Verdict.RETRY:
            row = message_lifecycle.record_retry(
                conn, message_id, now, decision.next_attempt_at, status_code, body,
                error or "transient failure", decision.counts_as_attempt,
            )  # fmt: skip
            return row is not None
        if decision.verdict is Verdict.SENT:
            row = message_lifecycle.record_sent(conn, message_id, now, status_code, body or "")
        else:
            row = message_lifecycle.record_failed(
                conn, message_id, status_code, body, error or "permanent failure"
            )
        if row is not None:
            planning.plan_users(conn, [row["user_id"]], now, send_time)
        return row is not None
