"""The worker's status changes: a queued greeting taken (or cancelled, or expired), and
what came of its attempt recorded under the lease it was taken with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import psycopg
from psycopg import sql

from db.queries import fetch_all, fetch_optional, not_by_index
from domain.statuses import Status
from repositories.message_lifecycle.sql_parts import (
    ORIGINAL_DATE,
    RETURNED,
    STILL_ON_ITS_DATE,
    response_body,
)

_START_SENDING = sql.SQL(
    """
    WITH target AS (
        SELECT m.id, m.occasion_date, u.email,
               u.id IS NOT NULL AND {still_on_its_date} AS still_due,
               COALESCE(m.lateness_from, m.scheduled_send_time)
                   >= {now} - %(max_lateness)s::interval AS in_time,
               u.first_name, u.last_name, u.location_city, u.location_country,
               {original_date} AS original_date, u.locale,
               wording.locale AS template_locale, wording.subject AS template_subject,
               wording.body_text AS template_text, wording.body_html AS template_html,
               delivery_window_opening({now}, z.compute_as, %(opens)s::time, %(closes)s::time)
                   AS window_opens_at,
               (SELECT s.reason FROM suppressions s WHERE s.email = u.email) AS suppressed_for
        FROM message_logs m
        LEFT JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL
        LEFT JOIN time_zones z ON z.name = u.timezone
        LEFT JOIN LATERAL (
            SELECT t.locale, t.subject, t.body_text, t.body_html
            FROM greeting_templates t
            WHERE t.message_type = m.message_type AND t.locale = ANY(locale_fallbacks(u.locale))
            ORDER BY array_position(locale_fallbacks(u.locale), t.locale)
            LIMIT 1
        ) wording ON true
        WHERE {wanted} AND {queued}
        ORDER BY m.id
        FOR UPDATE OF m
    )
    UPDATE message_logs m
    SET status = CASE WHEN NOT t.still_due OR t.suppressed_for IS NOT NULL THEN 'CANCELLED'
                      WHEN NOT t.in_time THEN 'EXPIRED'
                      ELSE 'SENDING' END,
        locked_until = CASE WHEN t.still_due AND t.suppressed_for IS NULL AND t.in_time
                            THEN {now} + %(lease)s::interval END,
        error_message = CASE
            WHEN NOT t.still_due THEN 'user deleted or changed before the send'
            WHEN t.suppressed_for IS NOT NULL THEN 'address suppressed: ' || t.suppressed_for
            WHEN NOT t.in_time
            THEN 'not sent within ' || %(max_lateness)s::interval || ' of its time'
            ELSE m.error_message END
    FROM target t
    WHERE m.id = t.id AND m.occasion_date = t.occasion_date AND {wanted} AND {queued}
    RETURNING {returned}, {now} AS database_now, t.email, t.first_name, t.last_name,
              t.location_city, t.location_country, t.original_date, t.locale,
              t.template_locale, t.template_subject, t.template_text, t.template_html,
              t.window_opens_at
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
# The row comes back with what its wording needs: the user's names, place, original
# date and locale, and the stored template of the closest locale (none: the built-in
# wording). The worker renders it just before the call, so an edit to a template or a
# user reaches every greeting not yet sent. `window_opens_at`: when the recipient's
# delivery window next opens, if their local time is outside it now (else NULL; NULL
# too when there is no window: opens and closes NULL).
_QUEUED_BY_KEY = not_by_index(sql.SQL("m.status = 'QUEUED'"))
_NOW_OR_DATABASE_NOW = sql.SQL("COALESCE(%(now)s::timestamptz, statement_timestamp())")
# Rendered to text once: psycopg then reuses its parse and its prepared statement,
# where a composed query would be rendered again on every take.
_START_SENDING_ON_DAYS = _START_SENDING.format(
    still_on_its_date=STILL_ON_ITS_DATE,
    original_date=ORIGINAL_DATE,
    returned=RETURNED,
    queued=_QUEUED_BY_KEY,
    wanted=sql.SQL(
        "(m.id, m.occasion_date) IN (SELECT * FROM unnest(%(ids)s::bigint[], %(days)s::date[]))"
        " AND m.occasion_date = ANY(%(days)s::date[])"
    ),
    now=_NOW_OR_DATABASE_NOW,
).as_string()
_START_SENDING_ANY_DAY = _START_SENDING.format(
    still_on_its_date=STILL_ON_ITS_DATE,
    original_date=ORIGINAL_DATE,
    returned=RETURNED,
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
    window: tuple[time, time] | None = None,
) -> list[dict]:
    """QUEUED -> SENDING for each (message id, occasion date or None) given, in one
    statement per kind of target: each row whose user still has its occasion on its
    date, within its deadline, is taken with a lease (its `locked_until`, the lease
    token); else it comes back CANCELLED (user deleted or changed) or EXPIRED (too late).

    Rows that were not QUEUED (a duplicate or redelivered message that lost the race)
    are missing from the result. With `now` None the database's clock is used; each
    row carries the instant used as `database_now`.
    """
    opens, closes = window or (None, None)
    params = {
        "now": now,
        "lease": lease,
        "max_lateness": max_lateness,
        "opens": opens,
        "closes": closes,
    }
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
    subject: str | None = None  # what was sent: the subject and the text
    text: str | None = None


_RECORD_SENT = """
UPDATE message_logs m
SET status = 'SENT', actual_send_time = a.sent_at, locked_until = NULL,
    api_response_code = a.code, api_response_body = a.body, error_message = NULL,
    subject = a.subject, message_content = COALESCE(a.text, m.message_content)
FROM unnest(%(ids)s::bigint[], %(days)s::date[], %(leases)s::timestamptz[],
            %(sent_at)s::timestamptz[], %(codes)s::integer[], %(bodies)s::text[],
            %(subjects)s::text[], %(texts)s::text[])
     AS a (id, occasion_date, lease, sent_at, code, body, subject, text)
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
        "bodies": [response_body(a.body) for a in answers],
        "subjects": [a.subject for a in answers],
        "texts": [a.text for a in answers],
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
        "body": response_body(answer.get("body")),
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
        "body": response_body(answer.get("body")),
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
