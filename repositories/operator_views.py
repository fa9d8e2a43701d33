"""Read-only views of message_logs for the operator's status page.

Every query is bounded by an index range so a view costs the same with a thousand
users or a million: by status and scheduled send time (message_logs_status_send_time_idx),
by next attempt (message_logs_due_idx) or by lease (message_logs_lease_idx). Bounds on
occasion_date, the partition key, keep the planner to the partitions that can hold rows.
A greeting's send instant lies within a day of its occasion date, in any time zone and
for any SEND_TIME, so a window of send times maps to occasion dates one day wider.
Statuses are written into the SQL as constants, not parameters: the planner uses a
partial index (message_logs_due_idx: WHERE status IN ('SCHEDULED', 'RETRYING')) only for a
predicate it can prove from constants. Their names are those of domain/statuses.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from db.queries import fetch_all, fetch_one, fetch_scalar
from domain import statuses

# The statuses' names, as the (status, scheduled_send_time) index is searched for them.
ALL_STATUSES = [status.value for status in statuses.ALL]
UNSENT_FINAL = [status.value for status in statuses.OPERATOR_RETRYABLE]

# Every status named, so the (status, scheduled_send_time) index is searched once per
# status for the range instead of being read whole.
_BY_DAY_AND_STATUS = """
SELECT (scheduled_send_time AT TIME ZONE 'UTC')::date AS day, status, count(*) AS count
FROM message_logs
WHERE status = ANY(%(statuses)s)
  AND scheduled_send_time >= %(start)s AND scheduled_send_time < %(end)s
  AND occasion_date BETWEEN %(start)s::date - 1 AND %(end)s::date + 1
GROUP BY 1, 2
"""


def count_by_day_and_status(conn: psycopg.Connection, start: datetime, end: datetime) -> list[dict]:
    """Greetings scheduled in [start, end) by UTC day and status: rows of day, status, count."""
    return fetch_all(
        conn, _BY_DAY_AND_STATUS, {"statuses": ALL_STATUSES, "start": start, "end": end}
    )


# What happened since `since` among greetings scheduled from `window_start` on; a
# greeting is sent, retried, failed or expired at most MAX_LATENESS after its
# scheduled time, so `window_start` = since - MAX_LATENESS (minus a margin) finds them.
_OUTCOMES = """
SELECT count(*) FILTER (WHERE status = 'SENT' AND actual_send_time >= %(since)s) AS sent,
       count(*) FILTER (WHERE last_retry_at >= %(since)s) AS retried,
       count(*) FILTER (WHERE status = 'FAILED' AND updated_at >= %(since)s) AS failed,
       count(*) FILTER (WHERE status = 'EXPIRED' AND updated_at >= %(since)s) AS expired
FROM message_logs
WHERE status = ANY(%(statuses)s)
  AND scheduled_send_time >= %(window_start)s AND scheduled_send_time <= %(now)s
  AND occasion_date BETWEEN %(window_start)s::date - 1 AND %(now)s::date + 1
"""


def count_outcomes_since(
    conn: psycopg.Connection, since: datetime, now: datetime, window_start: datetime
) -> dict:
    """Greetings sent, retried, failed and expired since `since` (scheduled after window_start)."""
    params = {"statuses": ALL_STATUSES, "since": since, "now": now, "window_start": window_start}
    return fetch_one(conn, _OUTCOMES, params)


_SENT_BY_HOUR = """
SELECT date_trunc('hour', actual_send_time) AS hour, count(*) AS count
FROM message_logs
WHERE status = 'SENT'
  AND scheduled_send_time >= %(window_start)s AND scheduled_send_time <= %(now)s
  AND occasion_date BETWEEN %(window_start)s::date - 1 AND %(now)s::date + 1
  AND actual_send_time >= %(since)s
GROUP BY 1
"""


def count_sent_by_hour(
    conn: psycopg.Connection, since: datetime, now: datetime, window_start: datetime
) -> list[dict]:
    """Greetings sent per hour (UTC) since `since`: rows of hour, count."""
    return fetch_all(
        conn, _SENT_BY_HOUR, {"since": since, "now": now, "window_start": window_start}
    )


# message_logs_due_idx holds exactly the waiting rows, keyed by next_attempt_at.
_DUE_BY_HOUR = """
SELECT date_trunc('hour', next_attempt_at) AS hour, count(*) AS count
FROM message_logs
WHERE status IN ('SCHEDULED', 'RETRYING')
  AND next_attempt_at > %(now)s AND next_attempt_at < %(until)s
GROUP BY 1
"""


def count_due_by_hour(conn: psycopg.Connection, now: datetime, until: datetime) -> list[dict]:
    """Waiting greetings per hour (UTC) of their next attempt in (now, until): hour, count."""
    return fetch_all(conn, _DUE_BY_HOUR, {"now": now, "until": until})


_UPCOMING_WHERE = """
m.status = 'SCHEDULED'
  AND m.scheduled_send_time >= %(now)s AND m.scheduled_send_time < %(until)s
  AND m.occasion_date BETWEEN %(now)s::date - 1 AND %(until)s::date + 1
  AND (%(message_type)s::text IS NULL OR m.message_type = %(message_type)s)
"""


def list_upcoming(
    conn: psycopg.Connection,
    now: datetime,
    until: datetime,
    message_type: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict], int]:
    """SCHEDULED greetings sent in [now, until), soonest first, with each user's zone; and total."""
    params = {"now": now, "until": until, "message_type": message_type}
    total = fetch_scalar(
        conn,
        f"SELECT count(*) FROM message_logs m WHERE {_UPCOMING_WHERE}",  # noqa: S608  a constant clause; values are bound
        params,
    )
    rows = fetch_all(
        conn,
        f"""
        SELECT m.id, m.user_id, m.message_type, m.occasion_date, m.scheduled_send_time,
               m.status, u.timezone, u.first_name, u.last_name
        FROM message_logs m
        JOIN users u ON u.id = m.user_id
        WHERE {_UPCOMING_WHERE}
        ORDER BY m.scheduled_send_time, m.id
        LIMIT %(limit)s OFFSET %(offset)s
        """,  # noqa: S608  a constant clause; values are bound
        {**params, "limit": limit, "offset": offset},
    )
    return rows, total


_FAILURES_WHERE = """
status = ANY(%(statuses)s)
  AND scheduled_send_time >= %(since)s
  AND occasion_date >= %(since)s::date - 1
"""


def list_failures(
    conn: psycopg.Connection, statuses: list[str], since: datetime, limit: int, offset: int
) -> tuple[list[dict], int]:
    """FAILED/EXPIRED greetings scheduled since `since`, latest first, with the provider's reply."""
    params = {"statuses": statuses, "since": since}
    total = fetch_scalar(conn, f"SELECT count(*) FROM message_logs WHERE {_FAILURES_WHERE}", params)  # noqa: S608  a constant clause; values are bound
    rows = fetch_all(
        conn,
        f"""
        SELECT id, user_id, message_type, occasion_date, scheduled_send_time, status,
               retry_count, api_response_code, left(api_response_body, 300) AS api_response_body,
               left(error_message, 300) AS error_message, updated_at
        FROM message_logs
        WHERE {_FAILURES_WHERE}
        ORDER BY scheduled_send_time DESC, id DESC
        LIMIT %(limit)s OFFSET %(offset)s
        """,  # noqa: S608  a constant clause; values are bound
        {**params, "limit": limit, "offset": offset},
    )
    return rows, total


# A QUEUED or SENDING row whose lease ran out (or that has none) waits for recovery.
_STUCK_WHERE = """
status IN ('QUEUED', 'SENDING') AND (locked_until < %(now)s OR locked_until IS NULL)
"""


def list_stuck(
    conn: psycopg.Connection, now: datetime, limit: int, offset: int
) -> tuple[list[dict], int]:
    """QUEUED/SENDING greetings whose lease has run out, longest overdue first; and total."""
    params = {"now": now}
    total = fetch_scalar(conn, f"SELECT count(*) FROM message_logs WHERE {_STUCK_WHERE}", params)  # noqa: S608  a constant clause; values are bound
    rows = fetch_all(
        conn,
        f"""
        SELECT id, user_id, message_type, occasion_date, scheduled_send_time, status,
               locked_until, retry_count, updated_at, left(error_message, 300) AS error_message
        FROM message_logs
        WHERE {_STUCK_WHERE}
        ORDER BY locked_until NULLS FIRST, id
        LIMIT %(limit)s OFFSET %(offset)s
        """,  # noqa: S608  a constant clause; values are bound
        {**params, "limit": limit, "offset": offset},
    )
    return rows, total


def lateness_window(since: datetime, max_lateness: timedelta) -> datetime:
    """The earliest scheduled time of a greeting that can have changed since `since`."""
    # An hour of margin for a dispatch run or a retry's backoff that ends past the bound.
    return since - max_lateness - timedelta(hours=1)
