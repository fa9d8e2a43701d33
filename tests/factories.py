"""Test rows with defaults you override: users (through the repository) and greetings in any
state (written with SQL); for the /users API tests, request bodies and checks of the JSON
error shape."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any

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


def messages_of(conn: psycopg.Connection, user_id: Any) -> list[dict]:
    """Every message of a user, newest occasion first."""
    return conn.execute(
        "SELECT * FROM message_logs WHERE user_id = %s ORDER BY occasion_date DESC, message_type",
        (user_id,),
    ).fetchall()


def ago(**delta: float) -> datetime:
    """Now minus a timedelta."""
    return datetime.now(UTC) - timedelta(**delta)


def ahead(**delta: float) -> datetime:
    """Now plus a timedelta."""
    return datetime.now(UTC) + timedelta(**delta)


# --- the /users API ------------------------------------------------------------------------

USER_FIELDS = {
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "timezone",
    "birthday_date",
    "anniversary_date",
    "location_city",
    "location_country",
    "locale",
    "unsubscribed",
    "created_at",
    "updated_at",
}
OMIT = object()
_sequence = itertools.count(1)


def user_payload(**overrides: Any) -> dict[str, Any]:
    """A valid POST body with a unique email; an override of OMIT drops the field."""
    number = next(_sequence)
    payload: dict[str, Any] = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": f"user{number}-{uuid.uuid4().hex[:8]}@example.com",
        "timezone": "Europe/London",
        "birthday_date": "1990-12-10",
        "anniversary_date": "2015-06-20",
        "location_city": "London",
        "location_country": "United Kingdom",
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not OMIT}


def create_user(client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/users", json=user_payload(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def delete_user(client, user_id: str) -> None:
    response = client.delete(f"/users/{user_id}")
    assert response.status_code == 204


def count_users(db_url: str) -> int:
    """Every row of users, live or deleted."""
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM users").fetchone()[0]


def stored_user(db_url: str, user_id: str) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return row


def assert_error(response, code: int) -> dict[str, Any]:
    """The JSON error shape: integer code, string status and string message."""
    assert response.status_code == code
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert body["code"] == code
    assert isinstance(body["code"], int)
    assert body["status"] == HTTPStatus(code).phrase
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def assert_field_error(response, field: str, location: str = "json") -> list[str]:
    """A 422 whose errors name `field` (under `location`); returns its messages."""
    body = assert_error(response, 422)
    messages = body["errors"][location][field]
    assert messages
    return messages


def assert_rejected(client, db_url: str, payload: dict[str, Any], field: str) -> list[str]:
    """POST is refused with a 422 naming `field`, and nothing is stored."""
    messages = assert_field_error(client.post("/users", json=payload), field)
    assert count_users(db_url) == 0
    return messages


def utc_today_plus(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def pagination(response) -> dict[str, Any]:
    return json.loads(response.headers["X-Pagination"])


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)
