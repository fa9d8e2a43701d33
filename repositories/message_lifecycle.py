"""Status changes of message_logs rows, each a conditional UPDATE … RETURNING.

The one place a greeting changes status (the planner's CANCELLED -> SCHEDULED
revival aside, which is part of the planning statement in repositories/messages.py).
The statuses and their named sets come from domain/statuses.py. Every transition
names the status it expects; when no row comes back, another process changed the
row first and the caller does nothing. A worker's answer is recorded only while it
still holds the lease it took (`lease` below is that lease's end, used as a token).

A greeting's deadline is COALESCE(lateness_from, scheduled_send_time) + MAX_LATENESS:
no transition moves a greeting toward the provider after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

import psycopg
from psycopg import sql

from db.queries import execute, fetch_all, fetch_optional, fetch_scalar, not_by_index
from domain import statuses
from domain.occasions import OCCASIONS
from domain.statuses import Status
from repositories import messages, occasion_sql

RESPONSE_BODY_LIMIT = 2000


def _status_list(members: tuple[Status, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(s.value) for s in members))


_SETS = {
    name: _status_list(members)
    for name, members in {
        "pending": statuses.PENDING,
        "waiting": statuses.WAITING,
        "in_flight": statuses.IN_FLIGHT,
        "cancellable": statuses.CANCELLABLE,
        "operator_retryable": statuses.OPERATOR_RETRYABLE,
    }.items()
}
_RETURNED = sql.SQL(
    "m.id, m.user_id, m.status, m.message_type, m.occasion_date, m.message_content,"
    " m.idempotency_key, m.retry_count, m.scheduled_send_time, m.lateness_from, m.locked_until"
)


def _statement(text: str, **fragments: sql.Composable) -> sql.Composed:
    """SQL with the named status sets ({waiting}, {in_flight}, …) and `fragments` filled in."""
    return sql.SQL(text).format(**_SETS, **fragments)


def _body(body: str | None) -> str | None:
    return None if body is None else body[:RESPONSE_BODY_LIMIT]


_EXPIRE = _statement(
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


_CLAIM = _statement(
    """
    WITH due AS (
        SELECT id, occasion_date FROM message_logs
        WHERE status IN {waiting}
          AND next_attempt_at <= %(now)s
          AND COALESCE(lateness_from, scheduled_send_time)
              >= %(now)s::timestamptz - %(max_lateness)s::interval
        ORDER BY next_attempt_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE message_logs m
    SET status = 'QUEUED', locked_until = %(now)s::timestamptz + %(lease)s::interval,
        queued_at = %(now)s
    FROM due
    WHERE m.id = due.id AND m.occasion_date = due.occasion_date AND m.status IN {waiting}
    RETURNING m.id, m.occasion_date, m.idempotency_key
    """
)


def claim_due(
    conn: psycopg.Connection,
    now: datetime,
    max_lateness: timedelta,
    limit: int,
    lease: timedelta,
) -> list[dict]:
    """Move up to `limit` due rows within their deadline to QUEUED (oldest first).

    SKIP LOCKED lets several dispatchers run at once without waiting or colliding.
    """
    params = {"now": now, "max_lateness": max_lateness, "limit": limit, "lease": lease}
    return fetch_all(conn, _CLAIM, params)


_NEXT_DUE = _statement(
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
    which: _statement(_RECLAIM_ANY, which=_status_list(which))
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
_STILL_ON_ITS_DATE = occasion_sql.still_on_its_date(OCCASIONS)

_START_SENDING = sql.SQL(
    """
    WITH target AS (
        SELECT m.id, m.occasion_date, u.email,
               u.id IS NOT NULL AND {still_on_its_date} AS still_due,
               COALESCE(m.lateness_from, m.scheduled_send_time)
                   >= {now} - %(max_lateness)s::interval AS in_time
        FROM message_logs m
        LEFT JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL
        WHERE {wanted} AND {queued}
        ORDER BY m.id
        FOR UPDATE OF m
    )
    UPDATE message_logs m
    SET status = CASE WHEN NOT t.still_due THEN 'CANCELLED'
                      WHEN NOT t.in_time THEN 'EXPIRED'
                      ELSE 'SENDING' END,
        locked_until = CASE WHEN t.still_due AND t.in_time
                            THEN {now} + %(lease)s::interval END,
        error_message = CASE
            WHEN NOT t.still_due THEN 'user deleted or changed before the send'
            WHEN NOT t.in_time
            THEN 'not sent within ' || %(max_lateness)s::interval || ' of its time'
            ELSE m.error_message END
    FROM target t
    WHERE m.id = t.id AND m.occasion_date = t.occasion_date AND {wanted} AND {queued}
    RETURNING {returned}, t.email, {now} AS database_now
    """
)
# A message names its row's partition (occasion_date), so the statement reads and
# updates only the partitions of the days it was given instead of planning and probing
# every month's (the days are repeated in the UPDATE's own WHERE: the planner prunes by
# parameters, not by what the CTE returns); messages published before they carried the
# date are taken by id alone. The rows are locked in id order, so two batches that
# share rows (a redelivered message) wait for each other instead of deadlocking.
# The rows are found by their key, never by status: QUEUED rows come and go faster
# than statistics follow, so PostgreSQL takes them for rare and would rather read every
# QUEUED row of the partition through the status index and filter by id: one take per
# row queued, quadratic in a spike (20,000 queued at once): see not_by_index.
# `now` NULL: the database's clock (the statement's start), returned as database_now.
_QUEUED_BY_KEY = not_by_index(sql.SQL("m.status = 'QUEUED'"))
_NOW_OR_DATABASE_NOW = sql.SQL("COALESCE(%(now)s::timestamptz, statement_timestamp())")
# Rendered to text once: psycopg then reuses its parse and its prepared statement,
# where a composed query would be rendered again on every take.
_START_SENDING_ON_DAYS = _START_SENDING.format(
    still_on_its_date=_STILL_ON_ITS_DATE,
    returned=_RETURNED,
    queued=_QUEUED_BY_KEY,
    wanted=sql.SQL(
        "(m.id, m.occasion_date) IN (SELECT * FROM unnest(%(ids)s::bigint[], %(days)s::date[]))"
        " AND m.occasion_date = ANY(%(days)s::date[])"
    ),
    now=_NOW_OR_DATABASE_NOW,
).as_string()
_START_SENDING_ANY_DAY = _START_SENDING.format(
    still_on_its_date=_STILL_ON_ITS_DATE,
    returned=_RETURNED,
    queued=_QUEUED_BY_KEY,
    wanted=sql.SQL("m.id = ANY(%(ids)s::bigint[])"),
    now=_NOW_OR_DATABASE_NOW,
).as_string()


def start_sending_many(
    conn: psycopg.Connection,
    targets: Sequence[tuple[int, date | None]],
    now: datetime | None,
    lease: timedelta,
    max_lateness: timedelta,
) -> list[dict]:
    """QUEUED -> SENDING for each (message id, occasion date or None) given, in one
    statement per kind of target: each row whose user still has its occasion on its
    date, within its deadline, is taken with a lease (its `locked_until`, the lease
    token); else it comes back CANCELLED (user deleted or changed) or EXPIRED (too late).

    Rows that were not QUEUED (a duplicate or redelivered message that lost the race)
    are missing from the result. With `now` None the database's clock is used; each
    row carries the instant used as `database_now`.
    """
    params = {"now": now, "lease": lease, "max_lateness": max_lateness}
    on_days = [(message_id, day) for message_id, day in targets if day is not None]
    any_day = [message_id for message_id, day in targets if day is None]
    rows: list[dict] = []
    if on_days:
        ids, days = (list(column) for column in zip(*on_days, strict=True))
        rows += fetch_all(conn, _START_SENDING_ON_DAYS, {**params, "ids": ids, "days": days})
    if any_day:
        rows += fetch_all(conn, _START_SENDING_ANY_DAY, {**params, "ids": any_day})
    return rows


@dataclass(frozen=True)
class SentAnswer:
    """What to store for one greeting the provider accepted."""

    message_id: int
    occasion_date: date
    lease: datetime  # the lease token the worker took the row with
    sent_at: datetime
    code: int
    body: str


_RECORD_SENT = """
UPDATE message_logs m
SET status = 'SENT', actual_send_time = a.sent_at, locked_until = NULL,
    api_response_code = a.code, api_response_body = a.body, error_message = NULL
FROM unnest(%(ids)s::bigint[], %(days)s::date[], %(leases)s::timestamptz[],
            %(sent_at)s::timestamptz[], %(codes)s::integer[], %(bodies)s::text[])
     AS a (id, occasion_date, lease, sent_at, code, body)
WHERE m.id = a.id AND m.occasion_date = a.occasion_date
  AND m.occasion_date = ANY(%(days)s::date[])
  AND m.status = 'SENDING' AND m.locked_until = a.lease
RETURNING m.id, m.user_id, a.lease
"""


def record_sent_many(conn: psycopg.Connection, answers: Sequence[SentAnswer]) -> list[dict]:
    """SENDING -> SENT with the provider's answer for each greeting whose lease is still
    the one given, in one statement; the rows recorded (id, user_id, lease)."""
    if not answers:
        return []
    params = {
        "ids": [a.message_id for a in answers],
        "days": [a.occasion_date for a in answers],
        "leases": [a.lease for a in answers],
        "sent_at": [a.sent_at for a in answers],
        "codes": [a.code for a in answers],
        "bodies": [_body(a.body) for a in answers],
    }
    return fetch_all(conn, _RECORD_SENT, params)


def record_retry(
    conn: psycopg.Connection,
    message_id: int,
    day: date,
    lease: datetime,
    now: datetime,
    next_attempt_at: datetime,
    answer: dict,
    counts_as_attempt: bool = True,
) -> dict | None:
    """SENDING -> RETRYING, due again at `next_attempt_at` (the dispatcher picks it up).

    `answer` holds `code`, `body` and `error`. A postponement (`counts_as_attempt`
    false) keeps the retry count and the last provider answer.
    """
    params = {
        "id": message_id,
        "day": day,
        "lease": lease,
        "now": now,
        "next": next_attempt_at,
        "increment": 1 if counts_as_attempt else 0,
        "code": answer.get("code"),
        "body": _body(answer.get("body")),
        "error": answer.get("error"),
    }
    return fetch_optional(conn, _RECORD_RETRY, params)


_RECORD_RETRY = """
UPDATE message_logs
SET status = 'RETRYING', locked_until = NULL, next_attempt_at = %(next)s,
    retry_count = retry_count + %(increment)s,
    last_retry_at = CASE WHEN %(increment)s > 0 THEN %(now)s ELSE last_retry_at END,
    api_response_code = CASE WHEN %(increment)s > 0 THEN %(code)s
                             ELSE api_response_code END,
    api_response_body = CASE WHEN %(increment)s > 0 THEN %(body)s
                             ELSE api_response_body END,
    error_message = %(error)s
WHERE id = %(id)s AND occasion_date = %(day)s
  AND status = 'SENDING' AND locked_until = %(lease)s
RETURNING id, retry_count
"""


def record_finished(
    conn: psycopg.Connection,
    message_id: int,
    day: date,
    lease: datetime,
    status: Status,
    answer: dict,
) -> dict | None:
    """SENDING -> FAILED or EXPIRED for good, keeping the provider's answer."""
    if status not in _RECORD_FINISHED:
        raise ValueError(f"not a final status after a send: {status}")
    params = {
        "id": message_id,
        "day": day,
        "lease": lease,
        "code": answer.get("code"),
        "body": _body(answer.get("body")),
        "error": answer.get("error"),
    }
    return fetch_optional(conn, _RECORD_FINISHED[status], params)


# One statement per final status, each naming its status as a constant.
_RECORD_FINISHED = {
    final: sql.SQL(
        """
        UPDATE message_logs
        SET status = {final}, locked_until = NULL,
            api_response_code = %(code)s, api_response_body = %(body)s, error_message = %(error)s
        WHERE id = %(id)s AND occasion_date = %(day)s
          AND status = 'SENDING' AND locked_until = %(lease)s
        RETURNING id, user_id
        """
    )
    .format(final=sql.Literal(final.value))
    .as_string()
    for final in (Status.FAILED, Status.EXPIRED)
}


_CANCEL = _statement(
    """
    UPDATE message_logs
    SET status = 'CANCELLED', error_message = %(reason)s, locked_until = NULL
    WHERE user_id = %(user_id)s AND status IN {cancellable}
    """
)


def cancel_pending(conn: psycopg.Connection, user_id: UUID, reason: str) -> int:
    """Cancel a user's greetings that no worker holds yet; returns how many."""
    return execute(conn, _CANCEL, {"user_id": user_id, "reason": reason})


_CANCEL_OFF_DATE = _statement(
    """
    UPDATE message_logs m
    SET status = 'CANCELLED', error_message = %(reason)s, locked_until = NULL
    FROM users u
    WHERE u.id = %(user_id)s AND m.user_id = u.id AND m.status IN {cancellable}
      AND NOT ({still_on_its_date})
    """,
    still_on_its_date=_STILL_ON_ITS_DATE,
)


def cancel_off_date(conn: psycopg.Connection, user_id: UUID, reason: str) -> int:
    """Cancel a user's greetings, not yet in a worker's hands, whose occasion no longer
    falls on their date (the date changed, or the occasion was removed); how many.

    Greetings whose occasion still falls on their date are left alone, owed or not.
    """
    return execute(conn, _CANCEL_OFF_DATE, {"user_id": user_id, "reason": reason})


_MAKE_DUE_AGAIN = _statement(
    """
    UPDATE message_logs
    SET status = 'SCHEDULED', next_attempt_at = %(now)s, lateness_from = %(now)s,
        retry_count = 0, locked_until = NULL, error_message = NULL
    WHERE id = %(id)s AND status IN {operator_retryable}
    RETURNING {returning}
    """,
    returning=messages.PUBLIC_SELECT,
)


def make_due_again(conn: psycopg.Connection, message_id: int, now: datetime) -> dict | None:
    """FAILED or EXPIRED -> SCHEDULED, due at `now` with a fresh lateness window; the
    message's public columns."""
    return fetch_optional(conn, _MAKE_DUE_AGAIN, {"id": message_id, "now": now})
