"""Test rows with defaults you override: users (through the repository) and greetings in any
state (written with SQL)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import psycopg

from repositories import users

_numbers = itertools.count()

# A valid POST /users body (one fixed email: each test's database starts empty).
ADA_BODY = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "timezone": "Europe/London",
    "birthday_date": "1990-12-10",
}


def make_user(
    conn: psycopg.Connection,
    *,
    timezone: str = "Europe/London",
    birthday: date | None = date(1990, 12, 10),
    anniversary: date | None = None,
    **fields,
) -> dict:
    """A live user Ada Lovelace with a unique email; `fields` set any other column."""
    n = next(_numbers)
    data = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"user{n}@example.com",
        "timezone": timezone,
        "birthday_date": birthday,
        "anniversary_date": anniversary,
        **fields,
    }
    return users.insert(conn, data)


def make_message(
    conn: psycopg.Connection,
    user: dict,
    *,
    status: str = "SCHEDULED",
    scheduled: datetime | None = None,
    occasion_date: date | None = None,
    message_type: str = "BIRTHDAY",
    **columns,
) -> dict:
    """A greeting row of `user` in `status`, scheduled at `scheduled` (default: now)."""
    scheduled = scheduled or datetime.now(UTC)
    occasion = occasion_date or scheduled.astimezone(UTC).date()
    values = {"message_content": "Hey", "next_attempt_at": scheduled, **columns}
    names = ", ".join(values)
    placeholders = ", ".join(f"%({name})s" for name in values)
    return conn.execute(
        f"""
        INSERT INTO message_logs (user_id, message_type, occasion_date,
                                  scheduled_send_time, status, idempotency_key, {names})
        VALUES (%(user_id)s, %(type)s, %(occasion)s, %(scheduled)s, %(status)s,
                message_idempotency_key(%(user_id)s, %(type)s, %(occasion)s), {placeholders})
        RETURNING *
        """,
        {
            "user_id": user["id"],
            "type": message_type,
            "occasion": occasion,
            "scheduled": scheduled,
            "status": status,
            **values,
        },
    ).fetchone()


def ago(**delta: float) -> datetime:
    """Now minus a timedelta."""
    return datetime.now(UTC) - timedelta(**delta)


def ahead(**delta: float) -> datetime:
    """Now plus a timedelta."""
    return datetime.now(UTC) + timedelta(**delta)
