"""Cheap aggregate reads for the metrics endpoint.

Statuses are SQL constants here, as in operator_views.py, so the due index's partial
predicate matches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from db.queries import fetch_all, fetch_one
from repositories import partitions

# Only partitions of the last month onwards: the live part of the table, so a
# scrape never counts years of history.
_BY_STATUS = """
SELECT status, message_type, count(*) AS count
FROM message_logs
WHERE occasion_date >= %(now)s::date - 31
GROUP BY status, message_type
"""

# Served by message_logs_due_idx (partial on the waiting states).
_DUE = """
SELECT count(*) AS due_backlog,
       coalesce(extract(epoch FROM %(now)s - min(next_attempt_at)), 0) AS oldest_due_age_seconds
FROM message_logs
WHERE status IN ('SCHEDULED', 'RETRYING') AND next_attempt_at <= %(now)s
"""

_JOBS = """
SELECT job, leader, extract(epoch FROM last_success_at) AS last_success
FROM scheduler_heartbeats ORDER BY last_started_at DESC
"""


def read_due(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """The due backlog (waiting greetings due at `now`) and the age of its oldest, in seconds."""
    due = fetch_one(conn, _DUE, {"now": now})
    return {
        "due_backlog": due["due_backlog"],
        "oldest_due_age_seconds": float(due["oldest_due_age_seconds"]),
    }


_UNSUBSCRIBED = """
SELECT occasion, count(*) AS users
FROM users u CROSS JOIN unnest(u.unsubscribed) AS occasion
WHERE u.unsubscribed <> '{}' AND u.deleted_at IS NULL
GROUP BY occasion
"""
_SUPPRESSED = "SELECT reason, count(*) AS addresses FROM suppressions GROUP BY reason"


def read_recipients(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Live users opted out of each occasion, and suppressed addresses by reason (read
    from the partial index of users who opted out of anything, and the small list)."""
    return {
        "unsubscribed": {r["occasion"]: r["users"] for r in fetch_all(conn, _UNSUBSCRIBED)},
        "suppressed": {r["reason"]: r["addresses"] for r in fetch_all(conn, _SUPPRESSED)},
    }


def read(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """Messages by status and type, the due backlog, the scheduler's jobs and partitions."""
    return {
        "by_status": fetch_all(conn, _BY_STATUS, {"now": now}),
        **read_due(conn, now),
        "jobs": fetch_all(conn, _JOBS),
        "default_partition_has_rows": partitions.default_has_rows(conn),
        "future_partitions": partitions.count_future(conn, now.date()),
        "recipients": read_recipients(conn),
    }
