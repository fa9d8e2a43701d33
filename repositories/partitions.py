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


# Bounds as printed by pg_get_expr, e.g. FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');
# NULL for the DEFAULT partition. reltuples is the planner's estimate (-1: never analysed).
_PARTITIONS = """
SELECT c.relname AS partition_name,
       pg_get_expr(c.relpartbound, c.oid) AS bounds,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([0-9-]+)''\\)'))[1]::date
           AS range_start,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([0-9-]+)''\\)'))[1]::date
           AS range_end,
       c.reltuples::bigint AS estimated_rows
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'message_logs'::regclass
"""


def list_all(conn: psycopg.Connection) -> list[dict]:
    """Every partition of message_logs with its bounds and row estimate (DEFAULT last)."""
    return fetch_all(conn, _PARTITIONS + " ORDER BY range_start NULLS LAST, partition_name")


def count_future(conn: psycopg.Connection, today: date) -> int:
    """How many monthly partitions start after the month of `today`."""
    return fetch_scalar(
        conn,
        f"SELECT count(*) FROM ({_PARTITIONS}) AS p"  # noqa: S608  a constant clause; values are bound
        " WHERE p.range_start > date_trunc('month', %(today)s::date)",
        {"today": today},
    )


def default_has_rows(conn: psycopg.Connection) -> bool:
    """Whether the DEFAULT partition holds any row (it should be empty); reads one row at most."""
    return fetch_scalar(conn, "SELECT EXISTS (SELECT 1 FROM message_logs_default)")
