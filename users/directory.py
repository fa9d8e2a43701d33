"""Creating, changing and deleting users, keeping their greetings planned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any
from uuid import UUID

import psycopg

from db.queries import Count
from domain.occasions import OCCASIONS
from errors import InvalidFields
from planning import for_users as planning
from repositories import message_lifecycle, users
from users.rules import occasion_date_errors

# A change to any of these changes when, or with what text, a greeting goes out.
PLANNING_FIELDS = ("first_name", "last_name", "timezone", *OCCASIONS.date_fields)


def create_user(
    conn: psycopg.Connection, data: Mapping[str, Any], now: datetime, send_time: time
) -> dict:
    """Store a new user and plan their greetings, in one statement."""
    return users.insert_planned(conn, data, now, send_time)


def replace_user(
    conn: psycopg.Connection,
    user_id: UUID,
    data: Mapping[str, Any],
    now: datetime,
    send_time: time,
) -> dict:
    """PUT: every writable field takes the given value; optional ones left out are cleared."""
    full = {field: data.get(field) for field in users.WRITABLE}
    return _update(conn, user_id, full, now, send_time)


def patch_user(
    conn: psycopg.Connection,
    user_id: UUID,
    changes: Mapping[str, Any],
    now: datetime,
    send_time: time,
) -> dict:
    """PATCH: change only the given fields, checking the rules on the merged result."""
    current = users.get_live(conn, user_id, for_update=True)
    errors = occasion_date_errors({**current, **changes}, now)
    if errors:
        raise InvalidFields(errors)
    return _update(conn, user_id, changes, now, send_time, before=current)


def _update(
    conn: psycopg.Connection,
    user_id: UUID,
    changes: Mapping[str, Any],
    now: datetime,
    send_time: time,
    before: dict | None = None,
) -> dict:
    before = before or users.get_live(conn, user_id, for_update=True)
    after = users.update(conn, user_id, changes)
    if any(before[field] != after[field] for field in PLANNING_FIELDS):
        planning.replan_user(conn, user_id, now, send_time)
    return after


def unsubscribe(conn: psycopg.Connection, user_id: UUID, occasions: list[str] | None) -> dict:
    """Opt a live user out of `occasions` (None: all); what is pending for them and no
    worker holds yet is cancelled, saying why."""
    user = users.get_live(conn, user_id, for_update=True)
    chosen = list(OCCASIONS.types) if occasions is None else occasions
    opted_out = sorted(set(user["unsubscribed"]) | set(chosen))
    after = users.set_unsubscribed(conn, user_id, opted_out)
    message_lifecycle.cancel_off_date(conn, [user_id], "unsubscribed")
    return after


def resubscribe(
    conn: psycopg.Connection,
    user_id: UUID,
    occasions: list[str] | None,
    now: datetime,
    send_time: time,
) -> dict:
    """Opt a live user back in to `occasions` (None: all), and plan their greetings."""
    user = users.get_live(conn, user_id, for_update=True)
    kept = [] if occasions is None else sorted(set(user["unsubscribed"]) - set(occasions))
    after = users.set_unsubscribed(conn, user_id, kept)
    planning.plan_user(conn, user_id, now, send_time)
    return after


def delete_user(conn: psycopg.Connection, user_id: UUID) -> None:
    """Soft-delete a live user and cancel their pending greetings; the email becomes free."""
    users.soft_delete(conn, user_id)
    planning.cancel_users(conn, [user_id])


def get_user(conn: psycopg.Connection, user_id: UUID) -> dict:
    """A live user by id."""
    return users.get_live(conn, user_id)


def list_users(
    conn: psycopg.Connection,
    search: str | None,
    timezone: str | None,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, UUID] | None = None,
    external_id: str | None = None,
) -> tuple[list[dict], bool]:
    """Up to `limit` live users (from `offset`, or right after a cursor's key) and
    whether more follow; with `external_id`, the one live user who has it."""
    return users.list_live(
        conn, search, timezone, limit=limit, offset=offset, after=after, external_id=external_id
    )


def count_users(
    conn: psycopg.Connection,
    search: str | None,
    timezone: str | None,
    exact_up_to: int,
    external_id: str | None = None,
) -> Count:
    """How many live users match: exact up to `exact_up_to`, estimated above."""
    return users.count_live(conn, search, timezone, exact_up_to, external_id)
