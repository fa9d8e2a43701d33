"""The scheduler's status changes: overdue greetings expired, due ones claimed for the
queue, stale ones queued again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import psycopg
from psycopg import sql

from db.queries import fetch_all, fetch_one, fetch_scalar
from domain import statuses
from domain.statuses import Status
from repositories.message_lifecycle.sql_parts import (
    statement,
    status_list,
)

_EXPIRE = statement(
    """
    WITH overdue AS (
        SELECT id, occasion_date FROM message_logs
        WHERE status IN {pending}
          AND COALESCE(lateness_from, scheduled_send_time)
              < %(now)s::timestamptz - %(max_lateness)s::interval
          AND (status IN {waiting} OR locked_until IS NULL OR locked_until < %(now)s)
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE message_logs m
    SET status = 'EXPIRED', locked_until = NULL,
        error_message = 'not sent within ' || %(max_lateness)s::interval || ' of its time'
    FROM overdue o
    WHERE m.id = o.id AND m.occasion_date = o.occasion_date
    RETURNING m.id, m.user_id, m.idempotency_key
    """
)


def expire_overdue(
    conn: psycopg.Connection, now: datetime, max_lateness: timedelta, limit: int
) -> list[dict]:
    """Up to `limit` unfinished rows past their deadline become EXPIRED.

    Waiting rows, and in-flight rows whose lease ran out (a row a worker holds is
    left to that worker, which checks the deadline itself).
    """
    params = {"now": now, "max_lateness": max_lateness, "limit": limit}
    return fetch_all(conn, _EXPIRE, params)


_CLAIM_ANY = """
    WITH due AS (
        SELECT m.id, m.occasion_date FROM message_logs m
        {users}
        WHERE m.status IN {waiting}
          AND m.next_attempt_at <= %(now)s
          AND COALESCE(m.lateness_from, m.scheduled_send_time)
              >= %(now)s::timestamptz - %(max_lateness)s::interval
          {in_window}
        ORDER BY m.next_attempt_at
        LIMIT %(limit)s
        FOR UPDATE OF m SKIP LOCKED
    )
    UPDATE message_logs m
    SET status = 'QUEUED', locked_until = %(now)s::timestamptz + %(lease)s::interval,
        queued_at = %(now)s
    FROM due
    WHERE m.id = due.id AND m.occasion_date = due.occasion_date AND m.status IN {waiting}
    RETURNING m.id, m.occasion_date, m.idempotency_key
    """
# The user's zone, for the delivery window (a deleted user's row is claimed: the worker
# cancels it).
_USERS_AND_ZONES = sql.SQL(
    "LEFT JOIN users u ON u.id = m.user_id LEFT JOIN time_zones z ON z.name = u.timezone"
)
_OPENING = sql.SQL(
    "delivery_window_opening(%(now)s::timestamptz, z.compute_as, %(opens)s::time, %(closes)s::time)"
)
# Without a window (DELIVERY_WINDOW=off) the statement reads message_logs alone.
_CLAIM = {
    False: statement(_CLAIM_ANY, users=sql.SQL(""), in_window=sql.SQL("")),
    True: statement(
        _CLAIM_ANY,
        users=_USERS_AND_ZONES,
        in_window=sql.SQL("AND {} IS NULL").format(_OPENING),
    ),
}
# One pass over the due rows in (next_attempt_at, id) order, a batch at a time from
# where the last batch ended: each due row is read once per dispatch. (Picking "rows
# outside the window" afresh for each batch read the rows inside it again every time:
# quadratic, 6 minutes for a million due.) The rows inside are left for the claim.
_DEFER = statement(
    """
    WITH scanned AS (
        SELECT m.id, m.occasion_date, m.next_attempt_at, {opening} AS opens_at
        FROM message_logs m
        {users}
        WHERE m.status IN {waiting}
          AND m.next_attempt_at <= %(now)s
          AND (m.next_attempt_at, m.id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
          AND COALESCE(m.lateness_from, m.scheduled_send_time)
              >= %(now)s::timestamptz - %(max_lateness)s::interval
        ORDER BY m.next_attempt_at, m.id
        LIMIT %(limit)s
    ), moved AS (
        UPDATE message_logs m
        SET next_attempt_at = scanned.opens_at
        FROM scanned
        WHERE m.id = scanned.id AND m.occasion_date = scanned.occasion_date
          AND scanned.opens_at IS NOT NULL AND m.status IN {waiting}
        RETURNING m.id
    ), last AS (
        SELECT next_attempt_at, id FROM scanned ORDER BY next_attempt_at DESC, id DESC LIMIT 1
    )
    SELECT (SELECT count(*) FROM scanned) AS scanned, (SELECT count(*) FROM moved) AS moved,
           (SELECT next_attempt_at FROM last) AS last_at, (SELECT id FROM last) AS last_id
    """,
    users=_USERS_AND_ZONES,
    opening=_OPENING,
)
# Before every due row.
DEFER_START = (datetime.min.replace(tzinfo=UTC), 0)


@dataclass(frozen=True)
class Deferral:
    """What one batch of `defer_to_window` did: rows read, rows moved, and where the
    next batch starts (None: the due rows are all read)."""

    scanned: int
    moved: int
    next_after: tuple[datetime, int] | None


def defer_to_window(
    conn: psycopg.Connection,
    now: datetime,
    max_lateness: timedelta,
    limit: int,
    window: tuple[time, time],
    after: tuple[datetime, int] = DEFER_START,
) -> Deferral:
    """Read up to `limit` due rows after `after` (next_attempt_at, id); those whose
    recipient's local time is outside `window` (opens, closes) wait for its next
    opening: their next_attempt_at moves there. One past its deadline by then stays
    waiting and expires at the deadline."""
    opens, closes = window
    params = {
        "now": now,
        "max_lateness": max_lateness,
        "limit": limit,
        "opens": opens,
        "closes": closes,
        "after_at": after[0],
        "after_id": after[1],
    }
    row = fetch_one(conn, _DEFER, params)
    done = row["scanned"] < limit
    return Deferral(
        row["scanned"], row["moved"], None if done else (row["last_at"], row["last_id"])
    )


def claim_due(
    conn: psycopg.Connection,
    now: datetime,
    max_lateness: timedelta,
    limit: int,
    lease: timedelta,
    window: tuple[time, time] | None = None,
) -> list[dict]:
    """Move up to `limit` due rows within their deadline to QUEUED (oldest first); with
    a delivery `window` (opens, closes), only those whose recipient's local time is in it.

    SKIP LOCKED lets several dispatchers run at once without waiting or colliding.
    """
    params = {"now": now, "max_lateness": max_lateness, "limit": limit, "lease": lease}
    opens, closes = window or (None, None)
    statement_ = _CLAIM[window is not None]
    return fetch_all(conn, statement_, {**params, "opens": opens, "closes": closes})


_NEXT_DUE = statement(
    """
    SELECT extract(epoch FROM min(next_attempt_at) - statement_timestamp())::float8
    FROM message_logs WHERE status IN {waiting}
    """
)


def seconds_until_next_due(conn: psycopg.Connection) -> float | None:
    """Seconds from the database's now until the earliest waiting greeting is due
    (negative: one is due already); None when none waits. Read from the due index."""
    return fetch_scalar(conn, _NEXT_DUE)


_RECLAIM_ANY = """
    WITH stale AS (
        SELECT id, occasion_date FROM message_logs
        WHERE status IN {which} AND locked_until < %(now)s
          AND COALESCE(lateness_from, scheduled_send_time)
              >= %(now)s::timestamptz - %(max_lateness)s::interval
        ORDER BY locked_until
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE message_logs m
    SET locked_until = %(now)s::timestamptz + CASE
            WHEN m.status = 'QUEUED'
            THEN GREATEST(%(lease)s::interval, %(now)s::timestamptz - m.queued_at)
            ELSE %(lease)s::interval END,
        queued_at = CASE WHEN m.status = 'QUEUED' THEN m.queued_at ELSE %(now)s END,
        error_message = CASE WHEN m.status = 'SENDING'
                             THEN 'worker lost during the send; queued again'
                             ELSE m.error_message END,
        status = 'QUEUED'
    FROM stale
    WHERE m.id = stale.id AND m.occasion_date = stale.occasion_date
    RETURNING m.id, m.occasion_date, m.idempotency_key
    """
# One statement for each set of statuses recovery asks for, the set written as
# constants (the lease index is partial on the in-flight statuses).
_RECLAIM = {
    which: statement(_RECLAIM_ANY, which=status_list(which))
    for which in (statuses.IN_FLIGHT, (Status.QUEUED,), (Status.SENDING,))
}


def reclaim_stale(
    conn: psycopg.Connection,
    now: datetime,
    lease: timedelta,
    max_lateness: timedelta,
    limit: int,
    which: tuple[Status, ...] = statuses.IN_FLIGHT,
) -> list[dict]:
    """QUEUED rows never picked up and SENDING rows whose worker died: QUEUED again
    (`which` narrows it to one of the two), oldest lease first.

    A lost worker is our fault, not the provider's: it uses up no retry, and the
    provider's Idempotency-Key makes the resend harmless if the first one reached
    it. A QUEUED row still waiting in a long queue gets a lease as long as it has
    already waited, so its extra copies double their interval instead of piling up.
    """
    params = {
        "now": now,
        "lease": lease,
        "max_lateness": max_lateness,
        "limit": limit,
    }
    return fetch_all(conn, _RECLAIM[tuple(which)], params)


def count_queued(conn: psycopg.Connection) -> int:
    """Greetings handed to the queue and not yet taken by a worker (any lease)."""
    return fetch_scalar(conn, "SELECT count(*) FROM message_logs WHERE status = 'QUEUED'")


# Whether greeting m (joined to its user u) still falls on its date: the user still has
# its occasion, celebrated on m.occasion_date (repositories/occasion_sql.py).
