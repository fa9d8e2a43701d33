"""message_logs partitions, through the SQL functions of migrations 0003 and 0008."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from db.queries import fetch_all, fetch_scalar


def limit_lock_wait(conn: psycopg.Connection, timeout: timedelta) -> None:
    """Give up (LockNotAvailable) on any lock not granted within `timeout`, for this transaction."""
    milliseconds = max(1, int(timeout.total_seconds() * 1000))
    fetch_scalar(
        conn, "SELECT set_config('lock_timeout', %(ms)s, true)", {"ms": f"{milliseconds}ms"}
    )


def create_monthly(
    conn: psycopg.Connection, months_ahead: int, from_date: date, dry_run: bool = False
) -> list[dict]:
    """Create missing partitions from `from_date`'s month on; rows: partition_name, rows_moved."""
    return fetch_all(
        conn,
        "SELECT partition_name, rows_moved FROM create_monthly_partitions("
        "%(ahead)s::integer, %(from_date)s::date, %(dry_run)s::boolean)",
        {"ahead": months_ahead, "from_date": from_date, "dry_run": dry_run},
    )


def drop_old(
    conn: psycopg.Connection, retain_months: int, as_of: date, dry_run: bool = False
) -> list[dict]:
    """Drop partitions entirely older than `retain_months`; rows: partition_name, range_end."""
    return fetch_all(
        conn,
        "SELECT partition_name, range_end FROM drop_old_partitions("
        "make_interval(months => %(months)s::integer), %(as_of)s::date, %(dry_run)s::boolean)",
        {"months": retain_months, "as_of": as_of, "dry_run": dry_run},
    )


def list_all(conn: psycopg.Connection) -> list[dict]:
    """Every partition of message_logs with its bounds and row estimate."""
    return fetch_all(
        conn,
        """
        SELECT c.relname AS partition_name,
               pg_get_expr(c.relpartbound, c.oid) AS bounds,
               c.reltuples::bigint AS estimated_rows
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'message_logs'::regclass
        ORDER BY c.relname
        """,
    )
