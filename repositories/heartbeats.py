"""The scheduler_heartbeats table: one row per scheduler job.

Every instant here is the database's clock, written and read: the scheduler's host
and the API's host may disagree by minutes, the database agrees with itself.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from db.queries import execute, fetch_all


def record_start(conn: psycopg.Connection, job: str, leader: str, now: datetime) -> None:
    """A job began on the leader."""
    execute(
        conn,
        """
        INSERT INTO scheduler_heartbeats (job, leader, last_started_at)
        VALUES (%(job)s, %(leader)s, %(now)s)
        ON CONFLICT (job) DO UPDATE
        SET leader = EXCLUDED.leader, last_started_at = EXCLUDED.last_started_at,
            updated_at = now()
        """,
        {"job": job, "leader": leader, "now": now},
    )


def record_end(conn: psycopg.Connection, job: str, error: str | None = None) -> None:
    """A job finished now (the database's clock): success moves last_success_at,
    failure keeps the error."""
    execute(
        conn,
        """
        UPDATE scheduler_heartbeats
        SET last_success_at = CASE WHEN %(error)s::text IS NULL THEN statement_timestamp()
                                   ELSE last_success_at END,
            last_error = %(error)s, updated_at = now()
        WHERE job = %(job)s
        """,
        {"job": job, "error": error},
    )


def list_all(conn: psycopg.Connection) -> list[dict]:
    """Every job's heartbeat, with how long ago (by the database's clock) it last
    succeeded as `since_success` (None: never)."""
    return fetch_all(
        conn,
        "SELECT job, leader, last_started_at, last_success_at, last_error,"
        " statement_timestamp() - last_success_at AS since_success"
        " FROM scheduler_heartbeats ORDER BY job",
    )
