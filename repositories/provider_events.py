"""The provider_events table: each provider event accepted once, by its id; and the
greeting a `delivered` event names."""

from __future__ import annotations

import re
from datetime import date, datetime
from uuid import UUID

import psycopg

from db.queries import execute, fetch_optional

_INSERT = """
INSERT INTO provider_events (id, type, bounce_type, email, idempotency_key, occurred_at)
VALUES (%(id)s, %(type)s, %(bounce_type)s, lower(%(email)s), %(key)s, %(at)s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


def insert(
    conn: psycopg.Connection,
    event_id: str,
    event_type: str,
    bounce_type: str | None,
    email: str,
    idempotency_key: str | None,
    at: datetime,
) -> bool:
    """Record an event; False when its id was recorded before (a replay)."""
    params = {
        "id": event_id,
        "type": event_type,
        "bounce_type": bounce_type,
        "email": email,
        "key": idempotency_key,
        "at": at,
    }
    return fetch_optional(conn, _INSERT, params) is not None


# A greeting's key is `<user id>:<message type>:<occasion date>` (migration 0002): the
# row is found by its unique (user, type, date), in its one partition.
_KEY = re.compile(r"([0-9a-f-]{36}):([A-Z][A-Z0-9_]{0,31}):(\d{4}-\d{2}-\d{2})")
_MARK_DELIVERED = """
UPDATE message_logs SET delivered_at = %(at)s
WHERE user_id = %(user_id)s AND message_type = %(type)s AND occasion_date = %(day)s
  AND idempotency_key = %(key)s
"""


def mark_delivered(conn: psycopg.Connection, idempotency_key: str, at: datetime) -> bool:
    """Record when the provider delivered the greeting with this key; False when no
    greeting has it."""
    match = _KEY.fullmatch(idempotency_key)
    if not match:
        return False
    try:
        user_id, day = UUID(match[1]), date.fromisoformat(match[3])
    except ValueError:
        return False
    params = {"at": at, "user_id": user_id, "type": match[2], "day": day, "key": idempotency_key}
    return execute(conn, _MARK_DELIVERED, params) > 0
