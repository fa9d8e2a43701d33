"""The users table."""

from __future__ import annotations

import psycopg

from db.queries import execute, fetch_scalar


def any_exist(conn: psycopg.Connection) -> bool:
    """Whether the table holds any user, live or deleted."""
    return fetch_scalar(conn, "SELECT EXISTS (SELECT 1 FROM users)")


def count_live(conn: psycopg.Connection) -> int:
    """Users not soft-deleted."""
    return fetch_scalar(conn, "SELECT count(*) FROM users WHERE deleted_at IS NULL")


def delete_all_with_messages(conn: psycopg.Connection) -> None:
    """Empty users and message_logs (development reset; never called by the service)."""
    execute(conn, "TRUNCATE message_logs, users")
