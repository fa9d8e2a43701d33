"""Every readiness check of the service, each bounded in time, and the runner that
asks them all at once.

/health (api/health.py) runs `run_checks` over all of them, `flask db health` runs
`check_database`, the status page shows the breaker; each check returns a report
whose `status` is ok, degraded, unavailable or unknown. The probes they use live
below: adapters/broker_probe.py (RabbitMQ), channels/guards.py (the
breaker's state in Redis), repositories/server.py and schema/migrations.py (PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool, PoolTimeout

from adapters import broker_probe
from channels.guards import breaker_state, connect_redis
from config import Settings
from db.availability import DatabaseUnreachable, connection_unless_unreachable
from db.pool import database_label
from repositories import heartbeats, server
from schema.migrations import Migration, read_status

CHECK_TIMEOUT = 2.0
# Every check at once, each bounded: the whole answer comes within 3 s.
READINESS_DEADLINE = 2.7

Report = dict[str, Any]


def _timed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def run_checks(
    checks: Mapping[str, Callable[[], Report]], deadline: float = READINESS_DEADLINE
) -> dict[str, Report]:
    """Run every check in parallel; one that has not answered by `deadline` s is unavailable."""
    executor = ThreadPoolExecutor(max_workers=len(checks))
    futures = {name: executor.submit(check) for name, check in checks.items()}
    until = time.monotonic() + deadline
    results = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=max(0.0, until - time.monotonic()))
        except FutureTimeout:
            results[name] = {"status": "unavailable", "reason": "no answer in time"}
    executor.shutdown(wait=False, cancel_futures=True)
    return results


def overall_status(reports: Mapping[str, Report]) -> str:
    """unavailable if any check is unavailable or unknown, else degraded if any is, else ok."""
    statuses = {report["status"] for report in reports.values()}
    if statuses & {"unavailable", "unknown"}:
        return "unavailable"
    return "degraded" if "degraded" in statuses else "ok"


# --- PostgreSQL ------------------------------------------------------------------


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


def open_and_check_database(
    pool: ConnectionPool, migrations: list[Migration], settings: Settings
) -> Report:
    """The database check of /health, /health/db and `flask db health`: opens the pool
    on its first use, then `check_database` within HEALTH_DB_TIMEOUT."""
    pool.open()
    return check_database(pool, migrations, timeout=settings.health_db_timeout)


def check_database(pool: ConnectionPool, migrations: list[Migration], timeout: float) -> Report:
    """Reachability, latency, version, pool and migration state; `status` is ok or unavailable.

    Bounded by `timeout` for the pool checkout plus the same as a statement timeout,
    so a dead or hung server is reported instead of hanging the caller.
    """
    report: Report = {
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
            report["latency_ms"] = _timed(started)
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
        return _unavailable(report, f"{len(status.pending)} migration(s) pending")
    return report


def _unavailable(report: Report, reason: str) -> Report:
    report["status"] = "unavailable"
    report["reason"] = reason
    return report


# --- RabbitMQ and Redis -------------------------------------------------------------


def check_rabbitmq(settings: Settings) -> Report:
    """Open and close an AMQP connection: ready when any RABBITMQ_URL address answers."""
    started = time.perf_counter()
    try:
        connection = broker_probe.open_connection(settings, CHECK_TIMEOUT)
        connection.close()
    except broker_probe.BrokerUnreachable as error:
        return {"status": "unavailable", "reason": str(error)}
    except Exception as error:  # closing a connection that broke meanwhile
        return {"status": "unavailable", "reason": f"{type(error).__name__}: {error}"}
    return {"status": "ok", "latency_ms": _timed(started)}


def check_redis(settings: Settings) -> Report:
    """PING the Redis that holds the rate limit and the breaker state."""
    started = time.perf_counter()
    try:
        connect_redis(settings).ping()
    except redis.RedisError as error:
        return {"status": "unavailable", "reason": str(error)}
    return {"status": "ok", "latency_ms": _timed(started)}


def check_breaker(settings: Settings) -> Report:
    """The provider circuit breaker shared by the workers: closed, open or half-open.

    An open breaker means the provider is failing: greetings wait, nothing is lost,
    so it makes the service degraded rather than unavailable.
    """
    try:
        state = breaker_state(connect_redis(settings))
    except redis.RedisError as error:
        return {"status": "unknown", "reason": str(error)}
    return {"status": "ok" if state == "closed" else "degraded", "state": state}


# --- The scheduler ----------------------------------------------------------------


def dispatch_allowance(settings: Settings) -> timedelta:
    """How long the dispatch job may go without a success before the scheduler counts as down."""
    return timedelta(seconds=max(3 * settings.dispatch_interval_seconds, 90))


def check_scheduler(pool: ConnectionPool, settings: Settings) -> Report:
    """The elected scheduler's heartbeat: its dispatch job must have succeeded lately,
    by the database's clock (the scheduler wrote it by that clock too).

    unknown (not unavailable) when the database cannot be asked.
    """
    try:
        with connection_unless_unreachable(pool, CHECK_TIMEOUT) as conn:
            jobs = {row["job"]: row for row in heartbeats.list_all(conn)}
    except (PoolTimeout, psycopg.Error) as error:
        return {"status": "unknown", "reason": f"database unavailable: {error}"}
    allowed = dispatch_allowance(settings)
    dispatch = jobs.get("dispatch")
    report: Report = {
        "leader": dispatch["leader"] if dispatch else None,
        "jobs": {name: _job_summary(row) for name, row in jobs.items()},
    }
    if not dispatched_lately(dispatch, settings):
        return {
            **report,
            "status": "unavailable",
            "reason": f"no successful dispatch in the last {allowed}",
        }
    return {**report, "status": "ok"}


def dispatched_lately(dispatch: dict | None, settings: Settings) -> bool:
    """Whether the dispatch job's heartbeat (a row of heartbeats.list_all) is recent."""
    since = dispatch["since_success"] if dispatch else None
    return since is not None and since <= dispatch_allowance(settings)


def _job_summary(row: dict) -> dict[str, Any]:
    return {
        "last_started_at": row["last_started_at"].isoformat(),
        "last_success_at": row["last_success_at"] and row["last_success_at"].isoformat(),
        "last_error": row["last_error"],
    }
