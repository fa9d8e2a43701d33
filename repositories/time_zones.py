"""The time_zones table: the zones users may have and the name each is computed by."""

from __future__ import annotations

from datetime import date, time

import psycopg

from db.queries import fetch_all, fetch_scalar


def refresh(conn: psycopg.Connection) -> int:
    """Copy new zones of the server's tz database and their compute_as; how many rows changed."""
    return fetch_scalar(conn, "SELECT refresh_time_zones()")


def sample_send_instants(conn: psycopg.Connection, days: list[date], send_time: time) -> list[dict]:
    """`send_time` local on each day as PostgreSQL computes it, for every zone live users have.

    Rows: zone (the user's spelling), day, instant. One index probe per zone finds
    whether anybody has it, so the cost does not grow with the number of users.
    """
    return fetch_all(
        conn,
        """
        SELECT z.name AS zone, d.day, local_send_instant(d.day, %(send_time)s::time,
                                                         z.compute_as) AS instant
        FROM time_zones z
        CROSS JOIN unnest(%(days)s::date[]) AS d (day)
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.timezone = z.name AND u.deleted_at IS NULL)
        ORDER BY z.name, d.day
        """,
        {"days": days, "send_time": send_time},
    )
