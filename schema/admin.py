"""Create and drop whole databases (the first run, and test isolation)."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def database_name(database_url: str) -> str:
    """The database a URL (or `key=value` string, one host or several) points at."""
    return str(conninfo_to_dict(database_url).get("dbname", ""))


def maintenance_url(database_url: str) -> str:
    """The same servers' `postgres` database, for CREATE/DROP DATABASE (hosts and
    `target_session_attrs` kept, so it reaches the primary of a multi-host URL)."""
    return make_conninfo(database_url, dbname="postgres")


def ensure_database(database_url: str, template: str | None = None) -> bool:
    """Create the database named in the URL if it is missing; True when created."""
    name = database_name(database_url)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
        return True


# No operator command drops a database (`flask db` never destroys data): the tests and
# benchmarks drop their scratch databases with this, the inverse of create_database.
def drop_database(database_url: str) -> None:
    """Drop the database named in the URL, closing its sessions first."""
    name = database_name(database_url)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
