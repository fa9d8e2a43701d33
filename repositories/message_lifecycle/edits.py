"""Status changes from outside the send path: a user's edit or deletion cancels
greetings, an operator makes a failed or expired one due again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import psycopg

from db.queries import execute, fetch_optional
from repositories import messages
from repositories.message_lifecycle.sql_parts import (
    STILL_ON_ITS_DATE,
    statement,
)

_CANCEL = statement(
    """
    UPDATE message_logs
    SET status = 'CANCELLED', error_message = %(reason)s, locked_until = NULL
    WHERE user_id = ANY(%(user_ids)s::uuid[]) AND status IN {cancellable}
    """
)


def cancel_pending(conn: psycopg.Connection, user_ids: Sequence[UUID], reason: str) -> int:
    """Cancel the users' greetings that no worker holds yet; returns how many."""
    return execute(conn, _CANCEL, {"user_ids": list(user_ids), "reason": reason})


_CANCEL_FOR_ADDRESS = statement(
    """
    UPDATE message_logs m
    SET status = 'CANCELLED', error_message = %(reason)s, locked_until = NULL
    FROM users u
    WHERE u.email = lower(%(email)s) AND u.deleted_at IS NULL AND m.user_id = u.id
      AND m.status IN {cancellable}
    """
)


def cancel_for_address(conn: psycopg.Connection, email: str, reason: str) -> int:
    """Cancel the greetings, not yet in a worker's hands, of the live user with `email`
    (any case); how many."""
    return execute(conn, _CANCEL_FOR_ADDRESS, {"email": email, "reason": reason})


_CANCEL_OFF_DATE = statement(
    """
    UPDATE message_logs m
    SET status = 'CANCELLED', error_message = %(reason)s, locked_until = NULL
    FROM users u
    WHERE u.id = ANY(%(user_ids)s::uuid[]) AND m.user_id = u.id AND m.status IN {cancellable}
      AND NOT ({still_on_its_date})
    """,
    still_on_its_date=STILL_ON_ITS_DATE,
)


def cancel_off_date(conn: psycopg.Connection, user_ids: Sequence[UUID], reason: str) -> int:
    """Cancel the users' greetings, not yet in a worker's hands, whose occasion no longer
    falls on their date (the date changed, or the occasion was removed); how many.

    Greetings whose occasion still falls on their date are left alone, owed or not.
    """
    return execute(conn, _CANCEL_OFF_DATE, {"user_ids": list(user_ids), "reason": reason})


_MAKE_DUE_AGAIN = statement(
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
