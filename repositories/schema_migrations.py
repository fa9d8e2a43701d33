"""The schema_migrations table: which migration files have been applied."""

from __future__ import annotations

import psycopg

from db.queries import execute, fetch_all, fetch_scalar

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL CHECK (duration_ms >= 0)
)
"""


def ensure_table(conn: psycopg.Connection) -> None:
    """Create schema_migrations if this database has never been migrated."""
    if not table_exists(conn):
        execute(conn, CREATE_TABLE)


def table_exists(conn: psycopg.Connection) -> bool:
    """Whether the database has a schema_migrations table at all."""
    return fetch_scalar(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL")


def list_applied(conn: psycopg.Connection) -> list[dict]:
    """Applied migrations, oldest first; empty when the table does not exist yet."""
    if not table_exists(conn):
        return []
    return fetch_all(
        conn,
        "SELECT version, name, checksum, applied_at, duration_ms"
        " FROM schema_migrations ORDER BY version",
    )


def record_applied(
    conn: psycopg.Connection, version: int, name: str, checksum: str, duration_ms: int
) -> None:
    """Note that a migration ran (inside the migration's own transaction)."""
    execute(
        conn,
        "INSERT INTO schema_migrations (version, name, checksum, duration_ms)"
        " VALUES (%(version)s, %(name)s, %(checksum)s, %(duration_ms)s)",
        {"version": version, "name": name, "checksum": checksum, "duration_ms": duration_ms},
    )


def remove_applied(conn: psycopg.Connection, version: int) -> None:
    """Forget a migration that was rolled back by its down file."""
    execute(conn, "DELETE FROM schema_migrations WHERE version = %(version)s", {"version": version})
