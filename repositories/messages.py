"""The message_logs table as the API reads it: one greeting, a filtered list, a count.

Planning writes through repositories/occurrences.py, status changes through
repositories/message_lifecycle/.
"""

from __future__ import annotations

from datetime import date

import psycopg
from psycopg import sql

from db.queries import (
    Count,
    count_up_to,
    fetch_optional,
    fetch_slice,
)

PUBLIC_COLUMNS = (
    "id",
    "user_id",
    "message_type",
    "occasion_date",
    "message_content",
    "subject",
    "delivered_at",
    "scheduled_send_time",
    "actual_send_time",
    "status",
    "retry_count",
    "api_response_code",
    "error_message",
    "idempotency_key",
)
PUBLIC_SELECT = sql.SQL(", ").join(map(sql.Identifier, PUBLIC_COLUMNS))


def get(conn: psycopg.Connection, message_id: int) -> dict | None:
    """One message by id, or None."""
    return fetch_optional(
        conn,
        sql.SQL("SELECT {} FROM message_logs WHERE id = %(id)s").format(PUBLIC_SELECT),
        {"id": message_id},
    )


def _list_filter(filters: dict) -> tuple[sql.Composable, dict]:
    conditions = [sql.SQL("TRUE")]
    clauses = {
        "user_id": "user_id = %(user_id)s",
        "status": "status = %(status)s",
        "message_type": "message_type = %(message_type)s",
        # occasion_date is the partition key: these bounds prune whole partitions.
        "date_from": "occasion_date >= %(date_from)s",
        "date_to": "occasion_date <= %(date_to)s",
    }
    for name, clause in clauses.items():
        if filters.get(name) is not None:
            conditions.append(sql.SQL(clause))
    return sql.SQL(" AND ").join(conditions), filters


def list_page(
    conn: psycopg.Connection,
    filters: dict,
    limit: int,
    offset: int = 0,
    after: tuple[date, int] | None = None,
) -> tuple[list[dict], bool]:
    """Up to `limit` messages matching the filters, newest occasion first
    (occasion_date, id descending), and whether more follow. `after` is the
    (occasion_date, id) of the last message already seen."""
    where, params = _list_filter(filters)
    if after is not None:
        # The plain bound lets PostgreSQL skip newer partitions; the row comparison
        # starts the page right after the last message seen.
        keyset = sql.SQL(
            "{} AND occasion_date <= %(after_date)s"
            " AND (occasion_date, id) < (%(after_date)s, %(after_id)s)"
        )
        where = keyset.format(where)
        params = {**params, "after_date": after[0], "after_id": after[1]}
    order = sql.SQL("occasion_date DESC, id DESC")
    key = ("id", "occasion_date")  # the primary key (occasion_date: the partition)
    return fetch_slice(
        conn, "message_logs", PUBLIC_SELECT, where, order, params, limit, offset, key=key
    )


def count_matching(conn: psycopg.Connection, filters: dict, exact_up_to: int) -> Count:
    """How many messages match the filters: exact up to `exact_up_to`, estimated above."""
    where, params = _list_filter(filters)
    return count_up_to(conn, "message_logs", where, params, exact_up_to)
