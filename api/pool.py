"""The web side's accessor for the app's pool: the database layer knows nothing of Flask."""

from __future__ import annotations

from flask import current_app
from psycopg_pool import ConnectionPool


def current_pool() -> ConnectionPool:
    """The current app's pool, opened if this is its first use (open is idempotent)."""
    pool = current_app.extensions["db_pool"]
    pool.open()
    return pool
