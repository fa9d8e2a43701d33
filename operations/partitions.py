"""Partition maintenance: future months created ahead, months past retention dropped.

The one home of the job the scheduler runs daily and `flask db partitions` runs on
demand. Each step (create, then drop) is a short transaction of its own, and every lock
is waited for at most PARTITION_LOCK_TIMEOUT: behind a long transaction the step gives
up (PartitionMaintenanceDeferred; it changed nothing) rather than make the queries
queued behind its lock request wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import psycopg
from psycopg import errors as pg_errors

from repositories import partitions


class PartitionMaintenanceDeferred(Exception):
    """A step gave up waiting for a lock; it changed nothing and can be run again."""


@dataclass(frozen=True)
class MaintenanceResult:
    created: list[dict]  # partition_name, rows_moved
    dropped: list[dict]  # partition_name, range_end


def maintain(
    conn: psycopg.Connection,
    *,
    ahead: int,
    retain_months: int,
    today: date,
    lock_timeout: timedelta,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Create `ahead` months of partitions from `today`'s on, then drop those older than
    `retain_months`, each step committed on its own (`conn` must not be inside a
    transaction: in autocommit, or idle); PartitionMaintenanceDeferred when a lock is not
    granted in time."""
    try:
        with conn.transaction():
            partitions.limit_lock_wait(conn, lock_timeout)
            created = partitions.create_monthly(conn, ahead, today, dry_run)
        with conn.transaction():
            partitions.limit_lock_wait(conn, lock_timeout)
            dropped = partitions.drop_old(conn, retain_months, today, dry_run)
    except pg_errors.LockNotAvailable as error:
        raise PartitionMaintenanceDeferred(
            f"gave up waiting {lock_timeout} for a lock on message_logs"
            f" ({error.diag.message_primary}); nothing changed in that step"
        ) from error
    return MaintenanceResult(created, dropped)
