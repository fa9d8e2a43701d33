"""The suppressions table: addresses never sent to, and why (stored lower-cased)."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

from db.queries import (
    Count,
    count_up_to,
    execute,
    fetch_all,
    fetch_one,
    fetch_optional,
    fetch_slice,
)

REASONS = ("bounce", "complaint", "no_such_recipient", "manual")
COLUMNS = sql.SQL("email, reason, source, detail, created_at")

_ADD = """
WITH added AS (
    INSERT INTO suppressions (email, reason, source, detail)
    VALUES (lower(%(email)s), %(reason)s, %(source)s, %(detail)s)
    ON CONFLICT (email) DO NOTHING
    RETURNING email, reason, source, detail, created_at, TRUE AS created
)
SELECT * FROM added
UNION ALL
SELECT email, reason, source, detail, created_at, FALSE FROM suppressions
WHERE email = lower(%(email)s) AND NOT EXISTS (SELECT 1 FROM added)
"""


def add(
    conn: psycopg.Connection, email: str, reason: str, source: str, detail: str | None = None
) -> dict:
    """Suppress `email` (the first reason given stays); the row, `created` saying whether
    it is new."""
    params = {"email": email, "reason": reason, "source": source, "detail": detail}
    return fetch_one(conn, _ADD, params)


def remove(conn: psycopg.Connection, email: str) -> bool:
    """Send to `email` again; False when it was not suppressed."""
    deleted = execute(
        conn, "DELETE FROM suppressions WHERE email = lower(%(email)s)", {"email": email}
    )
    return deleted > 0


def get(conn: psycopg.Connection, email: str) -> dict | None:
    return fetch_optional(
        conn,
        "SELECT email, reason, source, detail, created_at FROM suppressions"
        " WHERE email = lower(%(email)s)",
        {"email": email},
    )


def _filter(reason: str | None) -> tuple[sql.Composable, dict]:
    if reason is None:
        return sql.SQL("TRUE"), {}
    return sql.SQL("reason = %(reason)s"), {"reason": reason}


def list_page(
    conn: psycopg.Connection,
    reason: str | None,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[dict], bool]:
    """Suppressions oldest first (created_at, email), optionally of one reason; whether
    more follow. `after` is the (created_at, email) of the last one already seen."""
    where, params = _filter(reason)
    if after is not None:
        where = sql.SQL("{} AND (created_at, email) > (%(after_at)s, %(after_email)s)").format(
            where
        )
        params = {**params, "after_at": after[0], "after_email": after[1]}
    order = sql.SQL("created_at, email")
    return fetch_slice(
        conn, "suppressions", COLUMNS, where, order, params, limit, offset, key=("email",)
    )


def count(conn: psycopg.Connection, reason: str | None, exact_up_to: int) -> Count:
    where, params = _filter(reason)
    return count_up_to(conn, "suppressions", where, params, exact_up_to)


def counts_by_reason(conn: psycopg.Connection) -> dict[str, int]:
    """How many addresses are suppressed, by reason (every reason, 0 included)."""
    rows = fetch_all(conn, "SELECT reason, count(*) AS n FROM suppressions GROUP BY reason")
    found = {row["reason"]: row["n"] for row in rows}
    return {reason: found.get(reason, 0) for reason in REASONS}
