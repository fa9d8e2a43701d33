"""Cheap aggregate reads for the metrics endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from db.queries import fetch_all, fetch_one

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


def read(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """Messages by status and type, the due backlog and the scheduler's jobs."""
    due = fetch_one(conn, _DUE, {"now": now})
    return {
        "by_status": fetch_all(conn, _BY_STATUS, {"now": now}),
        "due_backlog": due["due_backlog"],
        "oldest_due_age_seconds": float(due["oldest_due_age_seconds"]),
        "jobs": fetch_all(conn, _JOBS),
    }
