"""Keeping every live user's next greeting planned."""

from __future__ import annotations

from datetime import datetime, time
from uuid import UUID

import psycopg

from repositories import message_lifecycle, occurrences, planned_changes


def plan_user(conn: psycopg.Connection, user_id: UUID, now: datetime, send_time: time) -> int:
    """Plan a new user's occasions, inside the transaction that created them."""
    return occurrences.plan_next_occurrences(conn, now, send_time, user_ids=[user_id])


def plan_users(
    conn: psycopg.Connection, user_ids: list[UUID], now: datetime, send_time: time
) -> int:
    """Plan the next occurrences of several users (after sends, failures, expiries)."""
    if not user_ids:
        return 0
    return occurrences.plan_next_occurrences(conn, now, send_time, user_ids=user_ids)


def plan_listed_users(conn: psycopg.Connection, table: str, now: datetime, send_time: time) -> int:
    """Plan the next occurrences of the users whose ids the temporary table `table` holds
    (column user_id), in one statement: a bulk import's new users."""
    return occurrences.plan_next_occurrences(conn, now, send_time, listed_in=table)


def plan_after_finished(
    conn: psycopg.Connection, finished_rows: list[dict], now: datetime, send_time: time
) -> int:
    """Plan next year's greetings of the users whose rows just ended (expired, failed)."""
    return plan_users(conn, sorted({row["user_id"] for row in finished_rows}), now, send_time)


def replan_user(conn: psycopg.Connection, user_id: UUID, now: datetime, send_time: time) -> int:
    """After a change of a user's zone, dates or name: `replan_users` for one."""
    return replan_users(conn, [user_id], now, send_time)


def replan_users(
    conn: psycopg.Connection, user_ids: list[UUID], now: datetime, send_time: time
) -> int:
    """After a change of zone, dates or name: replace what the change moved, keep the rest.

    A greeting not yet in a worker's hands whose occasion no longer falls on its date
    (the date changed, the occasion was removed) is cancelled; one not yet due moves to
    SEND_TIME local in the user's zone on the same date (the same row and key, due at
    once if that instant has passed); every one takes the new name. A greeting already
    due (overdue, retrying, queued) keeps its instant and deadline: it is still owed.
    Then what is missing (a new date, a new occasion) is planned; how many were.
    """
    if not user_ids:
        return 0
    message_lifecycle.cancel_off_date(conn, user_ids, reason="user changed before the send")
    planned_changes.move_not_yet_due(conn, user_ids, now, send_time)
    planned_changes.rename_unsent(conn, user_ids)
    return plan_users(conn, user_ids, now, send_time)


def cancel_users(conn: psycopg.Connection, user_ids: list[UUID]) -> int:
    """Deleted users get no more greetings."""
    return message_lifecycle.cancel_pending(conn, user_ids, reason="user deleted")
