"""Creating, changing and deleting users."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from errors import InvalidFields
from repositories import users
from services.user_rules import occasion_date_errors


def create_user(conn: psycopg.Connection, data: Mapping[str, Any]) -> dict:
    """Store a new user (fields already validated)."""
    return users.insert(conn, data)


def replace_user(conn: psycopg.Connection, user_id: UUID, data: Mapping[str, Any]) -> dict:
    """PUT: every writable field takes the given value; optional ones left out are cleared."""
    full = {field: data.get(field) for field in users.WRITABLE}
    return users.update(conn, user_id, full)


def patch_user(
    conn: psycopg.Connection, user_id: UUID, changes: Mapping[str, Any], now: datetime
) -> dict:
    """PATCH: change only the given fields, checking the rules on the merged result."""
    current = users.get_live(conn, user_id, for_update=True)
    errors = occasion_date_errors({**current, **changes}, now)
    if errors:
        raise InvalidFields(errors)
    return users.update(conn, user_id, changes)


def delete_user(conn: psycopg.Connection, user_id: UUID) -> None:
    """Soft-delete a live user; their email becomes free."""
    users.soft_delete(conn, user_id)


def get_user(conn: psycopg.Connection, user_id: UUID) -> dict:
    """A live user by id."""
    return users.get_live(conn, user_id)


def list_users(
    conn: psycopg.Connection, search: str | None, timezone: str | None, page: int, page_size: int
) -> tuple[list[dict], int]:
    """A page of live users and the total number matching."""
    return users.list_live(conn, search, timezone, limit=page_size, offset=(page - 1) * page_size)
