"""One psycopg connection pool per process, built from `Settings`."""

from __future__ import annotations

import logging
import select
import time
import weakref
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from config import Settings

log = logging.getLogger(__name__)
sql_log = logging.getLogger("sql")

# The abbreviation set every connection reads names with (PostgreSQL's default).
ABBREVIATIONS = "Default"


class ConnectOutcomes:
    """The outcome of a pool's latest attempt to open a connection (None: it worked)."""

    def __init__(self) -> None:
        self.last_error: str | None = None

    def record(self, error: Exception | None) -> None:
        self.last_error = None if error is None else first_line(error)


def _recording_connection_class(outcomes: ConnectOutcomes) -> type[psycopg.Connection]:
    """A connection class that tells `outcomes` whether each connect worked."""

    class RecordingConnection(psycopg.Connection):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> RecordingConnection:
            try:
                conn = super().connect(conninfo, **kwargs)
            except psycopg.OperationalError as error:
                outcomes.record(error)
                raise
            outcomes.record(None)
            return conn

    RecordingConnection.outcomes = outcomes
    return RecordingConnection


def first_line(error: Exception) -> str:
    """The first line of an error's text (libpq's messages run over several)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class LoggingCursor(psycopg.Cursor):
    """A cursor that logs each statement with its duration (SQL_LOG=1)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> LoggingCursor:
        started = time.perf_counter()
        try:
            return super().execute(query, params, **kwargs)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            text = query.as_string(self) if hasattr(query, "as_string") else str(query)
            sql_log.info("%.2f ms  %s", elapsed_ms, " ".join(text.split()))


def connection_kwargs(
    settings: Settings, application_name: str, generic_plans: bool = False
) -> dict[str, Any]:
    """Arguments for every connection: UTC session, pinned abbreviations, timeouts, dict rows.

    `generic_plans`: statements psycopg prepares (those run five times) keep one plan
    for the connection's life instead of being planned on every run, for a process whose
    every statement finds its rows by key (the worker's: planning its take over the
    monthly partitions cost ~3x executing it).
    """
    kwargs: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": application_name,
        # Aware datetimes come back in the session zone: keep it UTC everywhere.
        # AT TIME ZONE reads a name as an abbreviation of the session's set first:
        # pin the set, so a server configured with another one (where EST means
        # +10:00) cannot move an instant.
        # JIT compilation costs seconds on the planner's big statements and buys
        # nothing on short ones (measured: 5.2 s vs 0.37 s for one 50k-user batch).
        "options": (
            f"-c TimeZone=UTC -c timezone_abbreviations={ABBREVIATIONS}"
            f" -c statement_timeout={settings.db_statement_timeout_ms} -c jit=off"
            + (" -c plan_cache_mode=force_generic_plan" if generic_plans else "")
        ),
        "row_factory": dict_row,
    }
    if settings.sql_log:
        kwargs["cursor_factory"] = LoggingCursor
    return kwargs


def connect(
    settings: Settings, application_name: str, autocommit: bool = False, **extra: Any
) -> psycopg.Connection:
    """A single connection outside the pool (migrations, seed, leader locks)."""
    return psycopg.connect(
        settings.database_url,
        autocommit=autocommit,
        **connection_kwargs(settings, application_name),
        **extra,
    )


def server_spoke(conn: psycopg.Connection) -> bool:
    """Whether an idle connection has something to read (the server's goodbye, or EOF)."""
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


class CheckOnCheckout:
    """The pool's test of a connection on checkout (`check=`), without a round trip when
    the connection is quiet; finding one dead, it clears the pool of the other dead ones.

    An idle connection the server has closed (a restart, a failover, a terminated
    backend) has something to read: the server's goodbye or the end of the stream.
    Only then is the connection tested with a query (which raises if it is dead, and
    the pool opens another); a quiet socket is handed out as it is. This spares every
    checkout the round trip that testing it always would cost.

    A restart closes every idle connection at once, and psycopg-pool's checkout takes
    them oldest first, sleeping between two failed checks with its reconnect backoff
    (0, ~1, ~2, ~2 s: `_getconn_with_check_loop`), while the fresh connections replacing
    them queue up behind the dead ones. A worker whose pool held four idle connections
    answered its first request after a restart 503 after DB_POOL_TIMEOUT (5 s). So the
    first dead connection found gets the pool to test all its idle ones at once
    (`ConnectionPool.check()`: a round trip each, dead ones replaced at once), and the
    checkout's next try, which the pool makes without delay, gets a working connection.
    """

    def __init__(self) -> None:
        self._pool: weakref.ref[ConnectionPool] | None = None

    def attach(self, pool: ConnectionPool) -> None:
        """Name the pool this check serves (a weak reference: the pool holds the check)."""
        self._pool = weakref.ref(pool)

    def __call__(self, conn: psycopg.Connection) -> None:
        """Raise if `conn` is dead, after discarding the pool's other dead connections."""
        if not server_spoke(conn):
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            self._discard_dead_idle_connections()
            raise

    def _discard_dead_idle_connections(self) -> None:
        pool = self._pool() if self._pool is not None else None
        if pool is not None and not pool.closed:
            log.info(
                "pool %s found a connection closed by the server; testing the others", pool.name
            )
            pool.check()


def _log_reconnect_failed(pool: ConnectionPool) -> None:
    log.warning(
        "database %s still unreachable after %g s of retries; pool %s reconnects on the"
        " next request",
        database_label(pool),
        pool.reconnect_timeout,
        pool.name,
    )


def create_pool(
    settings: Settings,
    application_name: str,
    min_size: int | None = None,
    max_size: int | None = None,
    generic_plans: bool = False,
) -> ConnectionPool:
    """Build the pool, not yet open: the web side's `current_pool()` opens it on first use.

    Opening lazily keeps CLI commands such as `flask db create` working before the
    database exists. Servers open it without waiting (see deploy/gunicorn.conf.py,
    tasks/scheduler.py, tasks/runtime.py): PostgreSQL being down at start must not stop
    a process, which answers 503 or waits until the database is back.
    """
    check = CheckOnCheckout()
    pool = ConnectionPool(
        settings.database_url,
        kwargs=connection_kwargs(settings, application_name, generic_plans),
        min_size=settings.db_pool_min_size if min_size is None else min_size,
        max_size=settings.db_pool_max_size if max_size is None else max_size,
        max_idle=settings.db_pool_max_idle,
        timeout=settings.db_pool_timeout,
        # A restarted PostgreSQL leaves dead sockets in the pool: test on checkout.
        check=check,
        # psycopg-pool retries a failed connection with a doubling backoff for
        # `reconnect_timeout` (5 min by default) and, while that runs, a waiting client
        # starts no new attempt: with clients asking through a 40 s outage, the pool
        # came back 17.6 s after PostgreSQL did. With a 5 s series, after which the
        # next client starts a fresh attempt at once, it came back within 1.2 s.
        reconnect_timeout=settings.db_reconnect_timeout,
        reconnect_failed=_log_reconnect_failed,
        connection_class=_recording_connection_class(ConnectOutcomes()),
        name=application_name,
        open=False,
    )
    check.attach(pool)
    return pool


def database_label(pool: ConnectionPool) -> str:
    """`host:port[,host:port…]/database` of the pool's servers, without credentials."""
    params = conninfo_to_dict(str(pool.conninfo))
    hosts = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)  # one port for every host, as libpq reads it
    servers = ",".join(
        f"{host}:{port}" if port else host for host, port in zip(hosts, ports, strict=False)
    )
    return f"{servers}/{params.get('dbname', '')}"
