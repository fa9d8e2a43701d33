"""Planned occurrences in message_logs: the set-based planning statement, the users it
would plan, and moving or renaming what is planned when SEND_TIME, a zone or a name
changes. planning/ calls these; the calendar and the occasions are domain/occasions.py's.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import cache
from uuid import UUID

import psycopg
from psycopg import sql

from db.queries import (
    execute,
    fetch_all,
    fetch_scalar,
    not_by_index,
)
from domain import statuses
from domain.occasions import OCCASIONS, Occasions
from domain.statuses import Status
from repositories import occasion_sql

# Plans the next occurrence of every occasion that has none pending. Set-based:
# one statement for any number of users ({users} narrows it to some users or an id
# range; the same bounds on the message_logs subqueries let PostgreSQL read only
# that range of the per-user indexes instead of hashing every pending row).
# A CANCELLED row for the same date (the user changed a date away and back, or
# moved zone) is brought back rather than duplicated: the unique key
# (user_id, message_type, occasion_date) allows one row per day. Local time is
# computed by the zone's time_zones.compute_as, never by the user's spelling
# (AT TIME ZONE 'CET' would read an abbreviation; see migration 0009).
# That revival (CANCELLED -> SCHEDULED) is the one status change made outside
# repositories/message_lifecycle/: it is the ON CONFLICT branch of this INSERT, so
# planning stays one set-based statement instead of an insert and a second UPDATE.
# The finished row of the first date is found by its key (user, type, date), never
# through the status index: rows just SENT look rare to the statistics until the next
# ANALYZE, and a send's planning then read every finished row of the month (see
# db.queries.not_by_index).
# Every row is chosen before the first is inserted (the ORDER BY in `planned` reads
# them all): otherwise the finished-row check of each later user reads the rows this
# statement has just inserted into its partition, invisible to it but still scanned.
# On a first planning, whose partitions the planner sees empty, that was quadratic:
# 100,000 users took 33 s instead of 5.7 s (EXPLAIN ANALYZE). In partition order, the
# inserts also fill one partition's pages and indexes at a time.
# FOR SHARE OF u: a user being planned cannot change until this commits, and a
# change committed while this statement waited for the row is read (READ COMMITTED
# re-reads a locked row's newest version), so next year's greeting never carries a
# name, zone or date a concurrent PATCH has just replaced.
_PLAN = """
WITH occasions AS (
    SELECT u.id AS user_id, u.first_name, u.last_name, z.compute_as,
           o.message_type, o.original, o.leap_day,
           next_occasion_date(o.original, (%(now)s::timestamptz AT TIME ZONE z.compute_as)::date,
                              o.leap_day) AS first_date
    FROM users u
    JOIN time_zones z ON z.name = u.timezone
    CROSS JOIN LATERAL {user_occasions}
    WHERE u.deleted_at IS NULL AND o.original IS NOT NULL AND {users}
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = u.email)
      AND NOT EXISTS (
          SELECT 1 FROM message_logs p
          WHERE p.user_id = u.id AND p.message_type = o.message_type AND {pending_users}
            AND p.status IN {pending})
    FOR SHARE OF u
), chosen AS MATERIALIZED (
    SELECT c.*,
           CASE WHEN EXISTS (
                    SELECT 1 FROM message_logs f
                    WHERE f.user_id = c.user_id AND f.message_type = c.message_type
                      AND f.occasion_date = c.first_date AND {finished_users}
                      AND {finished})
                THEN occasion_in_year(c.original, extract(year FROM c.first_date)::integer + 1,
                                      c.leap_day)
                ELSE c.first_date
           END AS occasion_date
    FROM occasions c
), planned AS (
    SELECT user_id, message_type, occasion_date,
           {greeting_text} AS message_content,
           local_send_instant(occasion_date, %(send_time)s::time, compute_as) AS send_at
    FROM chosen
    ORDER BY occasion_date, user_id, message_type
)
INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                          scheduled_send_time, next_attempt_at, idempotency_key)
SELECT user_id, message_type, occasion_date, message_content, send_at, send_at,
       message_idempotency_key(user_id, message_type, occasion_date)
FROM planned
ON CONFLICT (user_id, message_type, occasion_date) DO UPDATE
SET status = 'SCHEDULED',
    message_content = EXCLUDED.message_content,
    scheduled_send_time = EXCLUDED.scheduled_send_time,
    next_attempt_at = EXCLUDED.next_attempt_at,
    retry_count = 0, last_retry_at = NULL, locked_until = NULL, actual_send_time = NULL,
    lateness_from = NULL, queued_at = NULL,
    api_response_code = NULL, api_response_body = NULL, error_message = NULL
WHERE message_logs.status = 'CANCELLED'
"""


def plan_next_occurrences(
    conn: psycopg.Connection,
    now: datetime,
    send_time: time,
    *,
    user_ids: list[UUID] | None = None,
    id_after: UUID | None = None,
    id_upto: UUID | None = None,
    listed_in: str | None = None,
    occasions: Occasions = OCCASIONS,
) -> int:
    """Plan missing next occurrences (all users, the given ones, the ones whose ids a
    temporary table `listed_in` holds in its column user_id, or ids in
    (id_after, id_upto]) of every occasion of the registry.

    Returns the number of rows inserted or brought back.
    """
    users = "all" if user_ids is None else "one" if len(user_ids) == 1 else "many"
    if listed_in is not None:
        users = f"listed:{listed_in}"
    query = _plan_statement(users, id_after is not None, id_upto is not None, occasions)
    params = {
        "now": now,
        "send_time": send_time,
        "user_ids": user_ids,
        "user_id": user_ids[0] if user_ids else None,
        "id_after": id_after,
        "id_upto": id_upto,
    }
    if user_ids is not None:
        return _plan_from_generic_plan(conn, query, params)
    return execute(conn, query, params)


@cache
def _plan_statement(
    users: str, has_after: bool, has_upto: bool, occasions: Occasions = OCCASIONS
) -> str:
    """The text of _PLAN for one shape of bounds, rendered once: psycopg then reuses
    its parsed form (the one-user statement runs on every user write and every send)."""
    kind, _, table = users.partition(":")
    user_ids = {"all": None, "one": [None], "many": [], "listed": None}[kind]
    # The subqueries find a user's rows by u.id already. Repeating a list of users there
    # tested each row against the whole list (a generic plan cannot hash the array):
    # quadratic, 4.7 s instead of 0.2 s for the 500 users of an expiry batch.
    correlated = None if kind == "many" else user_ids
    id_after = "after" if has_after else None
    id_upto = "upto" if has_upto else None
    chosen = _user_bounds("u.id", user_ids, id_after, id_upto)
    if table:
        listed = sql.SQL("u.id IN (SELECT user_id FROM {})").format(sql.Identifier(table))
        chosen = sql.SQL("{} AND {}").format(chosen, listed)
    return (
        sql.SQL(_PLAN)
        .format(
            user_occasions=occasion_sql.user_occasions(occasions),
            greeting_text=occasion_sql.greeting_text(
                occasions, "message_type", "first_name", "last_name"
            ),
            pending=status_list(statuses.PENDING),
            finished=not_by_index(sql.SQL("f.status IN {}").format(status_list(statuses.FINISHED))),
            users=chosen,
            pending_users=_user_bounds("p.user_id", correlated, id_after, id_upto),
            finished_users=_user_bounds("f.user_id", correlated, id_after, id_upto),
        )
        .as_string()
    )


# Force a generic plan for one statement: the first statement keeps the mode in force
# (in a setting of our own) and the second puts it back, neither reading it in Python.
_FORCE_GENERIC_PLAN = """
SELECT set_config('birthday.plan_cache_mode', current_setting('plan_cache_mode'), true),
       set_config('plan_cache_mode', 'force_generic_plan', true)
"""
# (In autocommit, where a local setting ends with its statement, nothing was kept.)
_RESTORE_PLAN_CACHE_MODE = """
SELECT set_config('plan_cache_mode',
                  COALESCE(NULLIF(current_setting('birthday.plan_cache_mode', true), ''),
                           current_setting('plan_cache_mode')),
                  true)
"""


def _plan_from_generic_plan(conn: psycopg.Connection, query: str, params: dict) -> int:
    """Run the planning statement for given users from a generic plan kept by the
    connection.

    Planning this statement across every monthly partition costs ~15x executing it
    for one user (measured 60 ms vs 4 ms with 27 partitions), and PostgreSQL would plan
    it afresh on each connection's first executions before settling on the generic
    plan. The API (each POST/PUT/PATCH) runs it for one user, the worker for the users
    of each batch of sends, the dispatcher for those whose greetings it expired.
    """
    # The three statements go in one round trip (a pipeline), not three.
    with conn.pipeline():
        conn.execute(_FORCE_GENERIC_PLAN)
        planning = conn.execute(query, params, prepare=True)
        # Only this statement: the caller's next ones plan as before. (On an error the
        # transaction rolls back, and the SET LOCAL with it.)
        conn.execute(_RESTORE_PLAN_CACHE_MODE)
    return planning.rowcount


# Users with an occasion and no pending greeting for it: those a planning pass would
# plan. One hash anti-join per occasion over the pending rows' (user_id, message_type)
# index, not a probe per user (1,000,000 users: ~1.8 s; the same test written with a
# LATERAL over both occasions took 3.3 s, the planner walking users in id order).
_MISSING_ONE_OCCASION = """
SELECT u.id FROM users u
WHERE u.deleted_at IS NULL AND {original} IS NOT NULL
  AND NOT ({message_type} = ANY(u.unsubscribed))
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = u.email)
  AND NOT EXISTS (SELECT 1 FROM message_logs p
                  WHERE p.user_id = u.id AND p.message_type = {message_type}
                    AND p.status IN {pending})
"""


@cache
def _missing_an_occurrence(occasions: Occasions) -> str:
    """One anti-join per occasion, their UNION, rendered once per registry."""
    per_occasion = [
        sql.SQL(_MISSING_ONE_OCCASION).format(
            original=sql.Identifier("u", occasion.date_field),
            message_type=sql.Literal(occasion.message_type),
            pending=status_list(statuses.PENDING),
        )
        for occasion in occasions
    ]
    return (sql.SQL(" UNION ").join(per_occasion) + sql.SQL(" LIMIT %(limit)s")).as_string()


def users_missing_an_occurrence(
    conn: psycopg.Connection, limit: int, occasions: Occasions = OCCASIONS
) -> list[UUID]:
    """Up to `limit` live users with an occasion that has no pending greeting."""
    query = _missing_an_occurrence(occasions)
    return [row["id"] for row in fetch_all(conn, query, {"limit": limit})]


def refresh_statistics(conn: psycopg.Connection) -> None:
    """ANALYZE users and message_logs (a role that does not own them gets a warning,
    not an error)."""
    execute(conn, "ANALYZE users, message_logs")


def status_list(members: tuple[Status, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(s.value) for s in members))


def _user_bounds(
    column: str, user_ids: list[UUID] | None, id_after: UUID | None, id_upto: UUID | None
) -> sql.Composable:
    """`column` restricted to the given users or to the id range (id_after, id_upto]."""
    conditions = [sql.SQL("TRUE")]
    if user_ids is not None and len(user_ids) == 1:
        # One user (after a send, a user write: the hot path): a plain equality. With
        # `= ANY(array)` PostgreSQL spent ~16x longer planning the statement across
        # the monthly partitions (measured 28.8 ms vs 1.8 ms with 14 partitions).
        conditions.append(sql.SQL(f"{column} = %(user_id)s"))
    elif user_ids is not None:
        conditions.append(sql.SQL(f"{column} = ANY(%(user_ids)s::uuid[])"))
    if id_after is not None:
        conditions.append(sql.SQL(f"{column} > %(id_after)s"))
    if id_upto is not None:
        conditions.append(sql.SQL(f"{column} <= %(id_upto)s"))
    return sql.SQL(" AND ").join(conditions)


def user_id_batch_end(conn: psycopg.Connection, after: UUID | None, size: int) -> UUID | None:
    """The id closing a batch of `size` live users after `after` (None when none are left)."""
    return fetch_scalar(
        conn,
        """
        SELECT id FROM (
            SELECT id FROM users
            WHERE deleted_at IS NULL AND (%(after)s::uuid IS NULL OR id > %(after)s)
            ORDER BY id LIMIT %(size)s
        ) AS batch
        ORDER BY id DESC LIMIT 1
        """,
        {"after": after, "size": size},
    )
