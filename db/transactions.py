"""Opening a unit of work on a pool: the one way code owns a transaction.

Code that joins its caller's transaction takes a connection and never imports this
module (import-linter holds it: pyproject.toml); code that owns its transactions takes
the pool and opens them here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection inside one transaction: commit on success, else roll back."""
    with pool.connection() as conn, conn.transaction():
        yield conn


@contextmanager
def single_statement(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection in autocommit, for work that is one statement: the server
    commits it as it runs, with no BEGIN and COMMIT round trips around it."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            if not conn.broken:
                conn.autocommit = False
