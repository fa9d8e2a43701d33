"""Reading greetings and the operator's retry."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

from errors import MessageNotFound, MessageNotRetryable
from repositories import message_lifecycle, messages, users


def get_message(conn: psycopg.Connection, message_id: int) -> dict:
    """One message; raises MessageNotFound."""
    message = messages.get(conn, message_id)
    if message is None:
        raise MessageNotFound(message_id)
    return message


def list_messages(
    conn: psycopg.Connection, filters: dict, page: int, page_size: int
) -> tuple[list[dict], int]:
    """A page of messages matching the filters, and the total."""
    return messages.list_page(conn, filters, limit=page_size, offset=(page - 1) * page_size)


def list_user_messages(
    conn: psycopg.Connection, user_id: UUID, page: int, page_size: int
) -> tuple[list[dict], int]:
    """A live user's messages; raises UserNotFound for unknown or deleted users."""
    users.get_live(conn, user_id)
    return list_messages(conn, {"user_id": user_id}, page, page_size)


def retry_message(conn: psycopg.Connection, message_id: int, now: datetime) -> dict:
    """Make a FAILED or EXPIRED message due now, with a fresh MAX_LATENESS window;
    other states are a conflict."""
    retried = message_lifecycle.make_due_again(conn, message_id, now, messages.PUBLIC_SELECT)
    if retried is not None:
        return retried
    current = get_message(conn, message_id)
    raise MessageNotRetryable(message_id, current["status"])
