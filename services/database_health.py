"""The database health check shared by /health, /health/db and `flask db health`."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from db.pool import DatabaseUnreachable, connection_unless_unreachable, database_label
from repositories import server
from schema.migrations import Migration, read_status


def pool_stats(pool: ConnectionPool) -> dict[str, int]:
    """Size, idle connections and waiting clients of the pool."""
    stats = pool.get_stats()
    return {
        "min": stats.get("pool_min", 0),
        "max": stats.get("pool_max", 0),
        "size": stats.get("pool_size", 0),
        "available": stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
    }


def check_database(
    pool: ConnectionPool, migrations: list[Migration], timeout: float
) -> dict[str, Any]:
    """Reachability, latency, version, pool and migration state; `status` is ok or unavailable.

    Bounded by `timeout` for the pool checkout plus the same as a statement timeout,
    so a dead or hung server is reported instead of hanging the caller.
    """
    report: dict[str, Any] = {
        "status": "ok",
        "latency_ms": None,
        "server_version": None,
        "pool": pool_stats(pool),
        "migrations": {"current": None, "pending": None, "drifted": []},
    }
    started = time.perf_counter()
    try:
        with connection_unless_unreachable(pool, timeout) as conn, conn.transaction():
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (f"{int(timeout * 1000)}ms",),
            )
            server.ping(conn)
            report["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            report["server_version"] = server.server_version(conn)
            status = read_status(conn, migrations)
    except DatabaseUnreachable as error:
        return _unavailable(report, f"no database connection to {database_label(pool)}: {error}")
    except PoolTimeout:
        return _unavailable(
            report, f"no database connection to {database_label(pool)} within {timeout:g} s"
        )
    except psycopg.Error as error:
        detail = error.diag.message_primary or str(error).strip()
        return _unavailable(report, f"database {database_label(pool)} error: {detail}")
    report["migrations"] = {
        "current": status.current,
        "pending": len(status.pending),
        "drifted": status.drifted,
    }
    if status.pending:
        report["status"] = "unavailable"
        report["reason"] = f"{len(status.pending)} migration(s) pending"
    return report


def _unavailable(report: dict[str, Any], reason: str) -> dict[str, Any]:
    report["status"] = "unavailable"
    report["reason"] = reason
    return report
