"""Status changes of message_logs rows, each a conditional UPDATE … RETURNING.

Every transition names the status it expects; when no row comes back, another
process changed the row first and the caller does nothing. Times are parameters.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from db.queries import fetch_all, fetch_optional

RESPONSE_BODY_LIMIT = 2000


def expire_overdue(conn: psycopg.Connection, now: datetime, max_lateness: timedelta) -> list[dict]:
    """Waiting rows due longer ago than the allowed lateness become EXPIRED."""
    return fetch_all(
        conn,
        """
        UPDATE message_logs
        SET status = 'EXPIRED', locked_until = NULL,
            error_message = 'not sent within ' || %(max_lateness)s::interval || ' of its time'
        WHERE status IN ('SCHEDULED', 'RETRYING')
          AND next_attempt_at < %(now)s::timestamptz - %(max_lateness)s::interval
        RETURNING id, user_id, idempotency_key
        """,
        {"now": now, "max_lateness": max_lateness},
    )


def claim_due(
    conn: psycopg.Connection,
    now: datetime,
    max_lateness: timedelta,
    limit: int,
    lease: timedelta,
) -> list[dict]:
    """Move up to `limit` due rows to QUEUED (oldest first) with a lease; returns them.

    SKIP LOCKED lets several dispatchers run at once without waiting or colliding.
    """
    return fetch_all(
        conn,
        """
        WITH due AS (
            SELECT id, occasion_date FROM message_logs
            WHERE status IN ('SCHEDULED', 'RETRYING')
              AND next_attempt_at <= %(now)s
              AND next_attempt_at >= %(now)s::timestamptz - %(max_lateness)s::interval
            ORDER BY next_attempt_at
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE message_logs m
        SET status = 'QUEUED', locked_until = %(now)s::timestamptz + %(lease)s::interval
        FROM due
        WHERE m.id = due.id AND m.occasion_date = due.occasion_date
          AND m.status IN ('SCHEDULED', 'RETRYING')
        RETURNING m.id, m.idempotency_key
        """,
        {"now": now, "max_lateness": max_lateness, "limit": limit, "lease": lease},
    )


def fail_exhausted_stale(conn: psycopg.Connection, now: datetime, max_retries: int) -> list[dict]:
    """SENDING rows whose worker vanished once too often become FAILED."""
    return fetch_all(
        conn,
        """
        UPDATE message_logs
        SET status = 'FAILED', locked_until = NULL,
            error_message = 'worker lost during the send; retries exhausted'
        WHERE status = 'SENDING' AND locked_until < %(now)s AND retry_count >= %(max_retries)s
        RETURNING id, user_id, idempotency_key
        """,
        {"now": now, "max_retries": max_retries},
    )


def reclaim_stale(
    conn: psycopg.Connection, now: datetime, lease: timedelta, limit: int
) -> list[dict]:
    """QUEUED rows never picked up and SENDING rows whose worker died: QUEUED again, new lease.

    A lost SENDING attempt counts as a retry; the provider's Idempotency-Key makes
    the resend harmless if the first one did reach it.
    """
    return fetch_all(
        conn,
        """
        WITH stale AS (
            SELECT id, occasion_date FROM message_logs
            WHERE status IN ('QUEUED', 'SENDING') AND locked_until < %(now)s
            ORDER BY locked_until
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE message_logs m
        SET retry_count = m.retry_count + CASE WHEN m.status = 'SENDING' THEN 1 ELSE 0 END,
            last_retry_at = CASE WHEN m.status = 'SENDING' THEN %(now)s ELSE m.last_retry_at END,
            status = 'QUEUED', locked_until = %(now)s::timestamptz + %(lease)s::interval
        FROM stale
        WHERE m.id = stale.id AND m.occasion_date = stale.occasion_date
        RETURNING m.id, m.idempotency_key
        """,
        {"now": now, "lease": lease, "limit": limit},
    )


def start_sending(
    conn: psycopg.Connection, message_id: int, now: datetime, lease: timedelta
) -> dict | None:
    """QUEUED -> SENDING for a user who still has this occasion, else -> CANCELLED.

    Returns the row with the user's current email, or None when the row was not
    QUEUED (a duplicate or redelivered message that lost the race).
    """
    return fetch_optional(
        conn,
        """
        WITH target AS (
            SELECT m.id, m.occasion_date, u.email,
                   u.id IS NOT NULL AND occasion_in_year(
                       CASE m.message_type WHEN 'BIRTHDAY' THEN u.birthday_date
                                           ELSE u.anniversary_date END,
                       extract(year FROM m.occasion_date)::integer
                   ) IS NOT DISTINCT FROM m.occasion_date AS still_due
            FROM message_logs m
            LEFT JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL
            WHERE m.id = %(id)s AND m.status = 'QUEUED'
            FOR UPDATE OF m
        )
        UPDATE message_logs m
        SET status = CASE WHEN t.still_due THEN 'SENDING' ELSE 'CANCELLED' END,
            locked_until = CASE WHEN t.still_due
                                THEN %(now)s::timestamptz + %(lease)s::interval END,
            error_message = CASE WHEN t.still_due THEN m.error_message
                                 ELSE 'user deleted or changed before the send' END
        FROM target t
        WHERE m.id = t.id AND m.occasion_date = t.occasion_date AND m.status = 'QUEUED'
        RETURNING m.id, m.user_id, m.status, m.message_type, m.occasion_date,
                  m.message_content, m.idempotency_key, m.retry_count, m.scheduled_send_time,
                  t.email
        """,
        {"id": message_id, "now": now, "lease": lease},
    )


def record_sent(
    conn: psycopg.Connection, message_id: int, now: datetime, code: int, body: str
) -> dict | None:
    """SENDING -> SENT with the provider's answer."""
    return fetch_optional(
        conn,
        """
        UPDATE message_logs
        SET status = 'SENT', actual_send_time = %(now)s, locked_until = NULL,
            api_response_code = %(code)s, api_response_body = %(body)s, error_message = NULL
        WHERE id = %(id)s AND status = 'SENDING'
        RETURNING id, user_id
        """,
        {"id": message_id, "now": now, "code": code, "body": body[:RESPONSE_BODY_LIMIT]},
    )


def record_retry(
    conn: psycopg.Connection,
    message_id: int,
    now: datetime,
    next_attempt_at: datetime,
    code: int | None,
    body: str | None,
    error: str,
    counts_as_attempt: bool = True,
) -> dict | None:
    """SENDING -> RETRYING, due again at `next_attempt_at` (the dispatcher picks it up)."""
    return fetch_optional(
        conn,
        """
        UPDATE message_logs
        SET status = 'RETRYING', locked_until = NULL, next_attempt_at = %(next)s,
            retry_count = retry_count + %(increment)s,
            last_retry_at = CASE WHEN %(increment)s > 0 THEN %(now)s ELSE last_retry_at END,
            api_response_code = %(code)s, api_response_body = %(body)s, error_message = %(error)s
        WHERE id = %(id)s AND status = 'SENDING'
        RETURNING id, retry_count
        """,
        {"id": message_id, "now": now, "next": next_attempt_at, "code": code,
         "body": None if body is None else body[:RESPONSE_BODY_LIMIT], "error": error,
         "increment": 1 if counts_as_attempt else 0},
    )  # fmt: skip


def record_failed(
    conn: psycopg.Connection,
    message_id: int,
    code: int | None,
    body: str | None,
    error: str,
) -> dict | None:
    """SENDING -> FAILED for good, keeping the provider's answer."""
    return fetch_optional(
        conn,
        """
        UPDATE message_logs
        SET status = 'FAILED', locked_until = NULL,
            api_response_code = %(code)s, api_response_body = %(body)s, error_message = %(error)s
        WHERE id = %(id)s AND status = 'SENDING'
        RETURNING id, user_id
        """,
        {"id": message_id, "code": code,
         "body": None if body is None else body[:RESPONSE_BODY_LIMIT], "error": error},
    )  # fmt: skip
