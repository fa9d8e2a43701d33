"""Reading and changing index definitions from the system catalog (bulk loads)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from db.queries import execute, fetch_all


def secondary_indexes(conn: psycopg.Connection, table: str) -> list[dict]:
    """Non-unique indexes of a table (top-level ones for a partitioned table): name, definition."""
    return fetch_all(
        conn,
        """
        SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = to_regclass(%(table)s) AND NOT i.indisunique
        ORDER BY c.relname
        """,
        {"table": table},
    )


def drop_index(conn: psycopg.Connection, name: str) -> None:
    """Drop one index (and, for a partitioned index, its partitions' indexes)."""
    execute(conn, sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))


def create_index(conn: psycopg.Connection, definition: str) -> None:
    """Recreate an index from the catalog's own definition of it.

    For a partitioned table the catalog says `ON ONLY parent`, which would build
    an invalid index on the parent alone: build it on every partition instead.
    """
    execute(conn, definition.replace(" ON ONLY ", " ON ", 1))


def use_bulk_load_memory(conn: psycopg.Connection) -> None:
    """More memory for index builds and validation joins, for this transaction only."""
    execute(conn, "SELECT set_config('maintenance_work_mem', '512MB', true)")
    execute(conn, "SELECT set_config('work_mem', '256MB', true)")


def foreign_keys(conn: psycopg.Connection, table: str) -> list[dict]:
    """Foreign keys declared on a table: name, definition (as ALTER TABLE would take it)."""
    return fetch_all(
        conn,
        """
        SELECT conname AS name, pg_get_constraintdef(oid) AS definition
        FROM pg_constraint
        WHERE conrelid = to_regclass(%(table)s) AND contype = 'f' AND conparentid = 0
        ORDER BY conname
        """,
        {"table": table},
    )


def drop_constraint(conn: psycopg.Connection, table: str, name: str) -> None:
    """Drop one constraint of a table."""
    execute(
        conn,
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(name)
        ),
    )


def add_constraint(conn: psycopg.Connection, table: str, name: str, definition: str) -> None:
    """Add a constraint from the catalog's own definition; validates existing rows."""
    execute(
        conn,
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            sql.Identifier(table), sql.Identifier(name)
        )
        + sql.SQL(definition),
    )
