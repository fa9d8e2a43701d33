"""Reading greetings and the operator's retry."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import psycopg

from db.queries import Count
from errors import MessageNotFound, MessageNotRetryable
from repositories import message_lifecycle, messages, users


def get_message(conn: psycopg.Connection, message_id: int) -> dict:
    """One message; raises MessageNotFound."""
    message = messages.get(conn, message_id)
    if message is None:
        raise MessageNotFound(message_id)
    return message


def list_messages(
    conn: psycopg.Connection,
    filters: dict,
    limit: int,
    offset: int = 0,
    after: tuple[date, int] | None = None,
) -> tuple[list[dict], bool]:
    """Up to `limit` messages matching the filters (from `offset`, or right after a
    cursor's key) and whether more follow."""
    return messages.list_page(conn, filters, limit=limit, offset=offset, after=after)


def count_messages(conn: psycopg.Connection, filters: dict, exact_up_to: int) -> Count:
    """How many messages match: exact up to `exact_up_to`, estimated above."""
    return messages.count_matching(conn, filters, exact_up_to)


def check_user_is_live(conn: psycopg.Connection, user_id: UUID) -> None:
    """Raises UserNotFound for unknown or deleted users."""
    users.get_live(conn, user_id)


def retry_message(conn: psycopg.Connection, message_id: int, now: datetime) -> dict:
    """Make a FAILED or EXPIRED message due now, with a fresh MAX_LATENESS window;
    other states are a conflict."""
    retried = message_lifecycle.make_due_again(conn, message_id, now)
    if retried is not None:
        return retried
    current = get_message(conn, message_id)
    raise MessageNotRetryable(message_id, current["status"])
