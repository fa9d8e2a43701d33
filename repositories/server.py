"""Facts about the PostgreSQL server itself, for health checks."""

from __future__ import annotations

from datetime import datetime

import psycopg

from db.queries import fetch_all, fetch_scalar

EXPECTED_EXTENSIONS = ("pgcrypto", "pg_trgm", "pg_stat_statements")


def ping(conn: psycopg.Connection) -> bool:
    """A round trip to the server."""
    return fetch_scalar(conn, "SELECT 1") == 1


def server_version(conn: psycopg.Connection) -> str:
    """The server's version string, e.g. '15.20'."""
    return fetch_scalar(conn, "SHOW server_version").split()[0]


def installed_extensions(conn: psycopg.Connection) -> dict[str, str | None]:
    """Version of each extension the schema uses, None where it is not installed."""
    rows = fetch_all(
        conn,
        "SELECT extname, extversion FROM pg_extension WHERE extname = ANY(%(names)s)",
        {"names": list(EXPECTED_EXTENSIONS)},
    )
    found = {row["extname"]: row["extversion"] for row in rows}
    return {name: found.get(name) for name in EXPECTED_EXTENSIONS}


def database_now(conn: psycopg.Connection) -> datetime:
    """The server's clock: one clock for leases and due times, whatever the hosts' skew."""
    return fetch_scalar(conn, "SELECT statement_timestamp()")
