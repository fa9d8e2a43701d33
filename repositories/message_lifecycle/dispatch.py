"""The scheduler's status changes: overdue greetings expired, due ones claimed for the
queue, stale ones queued again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta

import psycopg
from psycopg.types.json import Jsonb

from db.queries import fetch_all, fetch_scalar
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


# The next `limit` due rows within their deadline, oldest first, locked (SKIP LOCKED
# lets several dispatchers run at once without waiting or colliding).
_DUE = statement(
    """
    SELECT id, occasion_date, user_id FROM message_logs
    WHERE status IN {waiting}
      AND next_attempt_at <= %(now)s
      AND COALESCE(lateness_from, scheduled_send_time)
          >= %(now)s::timestamptz - %(max_lateness)s::interval
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
    """
)
_CLAIM = statement(
    """
    WITH due AS ({due})
    UPDATE message_logs m
    SET status = 'QUEUED', locked_until = %(now)s::timestamptz + %(lease)s::interval,
        queued_at = %(now)s
    FROM due
    WHERE m.id = due.id AND m.occasion_date = due.occasion_date AND m.status IN {waiting}
    RETURNING m.id, m.occasion_date, m.idempotency_key
    """,
    due=_DUE,
)


def claim_due(
    conn: psycopg.Connection, now: datetime, max_lateness: timedelta, limit: int, lease: timedelta
) -> list[dict]:
    """Move up to `limit` due rows within their deadline to QUEUED (oldest first).

    SKIP LOCKED lets several dispatchers run at once without waiting or colliding.
    """
    params = {"now": now, "max_lateness": max_lateness, "limit": limit, "lease": lease}
    return fetch_all(conn, _CLAIM, params)


# Zones whose local time at `now` is outside the window, and its next opening there;
# none computed when nothing is due (the EXISTS is read once, from the due index).
_OPENINGS = statement(
    """
    SELECT name, opens_at
    FROM (
        SELECT name, delivery_window_opening(
                   %(now)s::timestamptz, compute_as, %(opens)s::time, %(closes)s::time
               ) AS opens_at
        FROM time_zones
        WHERE EXISTS (
            SELECT FROM message_logs WHERE status IN {waiting} AND next_attempt_at <= %(now)s
        )
    ) AS zone
    WHERE opens_at IS NOT NULL
    """
)


def window_openings(
    conn: psycopg.Connection, now: datetime, window: tuple[time, time]
) -> dict[str, datetime]:
    """Zone name -> the instant `window` (opens, closes) next opens there, for every
    zone whose local time at `now` is outside it; empty when no greeting is due."""
    opens, closes = window
    rows = fetch_all(conn, _OPENINGS, {"now": now, "opens": opens, "closes": closes})
    return {row["name"]: row["opens_at"] for row in rows}


# The next due rows straight off the due index; those whose recipient is in a zone
# outside the window move to its opening (waiting still), the others are QUEUED. A
# deleted user's row is queued: the worker cancels it. Every row taken leaves the due
# set, so each batch starts where the last one ended without a key to resume from.
_CLAIM_IN_WINDOW = statement(
    """
    WITH due AS ({due}), placed AS MATERIALIZED (
        SELECT id, occasion_date, (
            %(openings)s::jsonb ->> (SELECT u.timezone FROM users u WHERE u.id = due.user_id)
        )::timestamptz AS opens_at
        FROM due
    )
    UPDATE message_logs m
    SET status = CASE WHEN p.opens_at IS NULL THEN 'QUEUED' ELSE m.status END,
        locked_until = CASE WHEN p.opens_at IS NULL
                            THEN %(now)s::timestamptz + %(lease)s::interval END,
        queued_at = CASE WHEN p.opens_at IS NULL THEN %(now)s ELSE m.queued_at END,
        next_attempt_at = COALESCE(p.opens_at, m.next_attempt_at)
    FROM placed p
    WHERE m.id = p.id AND m.occasion_date = p.occasion_date AND m.status IN {waiting}
    RETURNING m.id, m.occasion_date, m.idempotency_key, p.opens_at AS waits_until
    """,
    due=_DUE,
)


def claim_due_in_window(
    conn: psycopg.Connection,
    now: datetime,
    max_lateness: timedelta,
    limit: int,
    lease: timedelta,
    openings: Mapping[str, datetime],
) -> list[dict]:
    """Take up to `limit` due rows within their deadline (oldest first): those whose
    recipient's zone is in `openings` (outside the window: `window_openings`) wait for
    its opening, their `waits_until`; the others are QUEUED (`waits_until` None).

    One past its deadline by its opening stays waiting and expires at the deadline.
    `openings` travel as one JSON object, looked up by zone name: a join with them as
    a table was planned as a scan of all of them for every row.
    """
    params = {
        "now": now,
        "max_lateness": max_lateness,
        "limit": limit,
        "lease": lease,
        "openings": Jsonb({zone: at.isoformat() for zone, at in openings.items()}),
    }
    return fetch_all(conn, _CLAIM_IN_WINDOW, params)


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
