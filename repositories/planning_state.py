"""The planning_state row: what the hourly planning remembers between runs."""

from __future__ import annotations

from datetime import time

import psycopg

from db.queries import execute, fetch_scalar


def retimed_to(conn: psycopg.Connection) -> time | None:
    """The SEND_TIME every SCHEDULED greeting was last retimed to (None: never recorded)."""
    return fetch_scalar(conn, "SELECT send_time FROM planning_state")


def record_retimed_to(conn: psycopg.Connection, send_time: time) -> None:
    execute(
        conn,
        "INSERT INTO planning_state (send_time) VALUES (%(send_time)s)"
        " ON CONFLICT (singleton) DO UPDATE SET send_time = EXCLUDED.send_time, updated_at = now()",
        {"send_time": send_time},
    )
