"""Keeping every live user's next greeting planned."""

from __future__ import annotations

from datetime import datetime, time
from uuid import UUID

import psycopg

from repositories import message_lifecycle, messages


def plan_user(conn: psycopg.Connection, user_id: UUID, now: datetime, send_time: time) -> int:
    """Plan a new user's occasions, inside the transaction that created them."""
    return messages.plan_next_occurrences(conn, now, send_time, user_ids=[user_id])


def plan_users(
    conn: psycopg.Connection, user_ids: list[UUID], now: datetime, send_time: time
) -> int:
    """Plan the next occurrences of several users (after sends, failures, expiries)."""
    if not user_ids:
        return 0
    return messages.plan_next_occurrences(conn, now, send_time, user_ids=user_ids)


def plan_after_finished(
    conn: psycopg.Connection, finished_rows: list[dict], now: datetime, send_time: time
) -> int:
    """Plan next year's greetings of the users whose rows just ended (expired, failed)."""
    return plan_users(conn, sorted({row["user_id"] for row in finished_rows}), now, send_time)


def replan_user(conn: psycopg.Connection, user_id: UUID, now: datetime, send_time: time) -> int:
    """After a change of zone, dates or name: cancel what is pending and plan afresh.

    An occurrence that stays on the same date comes back as the same row (with its
    new send time and text), so its idempotency key does not change.
    """
    message_lifecycle.cancel_pending(conn, user_id, reason="user changed before the send")
    return messages.plan_next_occurrences(conn, now, send_time, user_ids=[user_id])


def cancel_user(conn: psycopg.Connection, user_id: UUID) -> int:
    """A deleted user gets no more greetings."""
    return message_lifecycle.cancel_pending(conn, user_id, reason="user deleted")
