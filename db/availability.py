"""Whether the database is there: health checks' bounded connection attempts, and the
processes' wait (logged) for PostgreSQL at start or after an outage."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from db.pool import database_label

log = logging.getLogger(__name__)

# How often a process waiting for PostgreSQL repeats that it is still waiting.
WAITING_LOG_INTERVAL = 15.0
# Health checks look at the pool's latest connection attempt this often while waiting.
PROBE_SLICE = 0.2


class DatabaseUnreachable(PoolTimeout):
    """No pooled connection, and the pool's latest attempt to connect failed."""


def last_connect_error(pool: ConnectionPool) -> str | None:
    """Why the pool's latest attempt to connect failed; None if it worked (or none yet)."""
    outcomes = getattr(pool.connection_class, "outcomes", None)
    return outcomes.last_error if outcomes is not None else None


@contextmanager
def connection_unless_unreachable(
    pool: ConnectionPool, timeout: float
) -> Iterator[psycopg.Connection]:
    """`pool.connection(timeout)`, but raise `DatabaseUnreachable` early when no connection
    is free and the pool's latest attempt to connect failed.

    For health checks: a refused connection is known at once, so the answer need not
    wait the whole timeout. A hung server still takes `timeout` (PoolTimeout).
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            conn = pool.getconn(timeout=max(0.01, min(PROBE_SLICE, remaining)))
            break
        except PoolTimeout:
            error = last_connect_error(pool)
            if error is not None:
                raise DatabaseUnreachable(error) from None
            if time.monotonic() >= deadline:
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None
    try:
        with conn:
            yield conn
    finally:
        pool.putconn(conn)


def wait_for_database(pool: ConnectionPool, purpose: str) -> bool:
    """Block until the open pool hands out a working connection, logging what it waits for.

    Returns False if the pool is closed first.
    """
    label = database_label(pool)
    waited_since: float | None = None
    last_logged: float | None = None
    while True:
        try:
            with pool.connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
        except PoolClosed:
            return False
        except (PoolTimeout, psycopg.Error) as error:
            now = time.monotonic()
            if waited_since is None:
                waited_since = now
            if last_logged is None or now - last_logged >= WAITING_LOG_INTERVAL:
                last_logged = now
                log.warning(
                    "waiting for the database %s (%s): unreachable for %.0f s: %s",
                    label,
                    purpose,
                    now - waited_since,
                    error,
                )
            time.sleep(1.0)
            continue
        if waited_since is None:
            log.info("database %s reachable (%s)", label, purpose)
        else:
            log.info(
                "database %s reachable again (%s) after %.0f s",
                label,
                purpose,
                time.monotonic() - waited_since,
            )
        return True


def watch_database(pool: ConnectionPool, purpose: str) -> threading.Thread:
    """Open the pool without waiting and log, from a daemon thread, until it connects."""
    pool.open()
    thread = threading.Thread(
        target=wait_for_database, args=(pool, purpose), name=f"{pool.name}-wait", daemon=True
    )
    thread.start()
    return thread
