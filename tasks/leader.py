"""Leader election for schedulers: a PostgreSQL session advisory lock.

The lock lives on a dedicated autocommit connection (never a pooled one: the lock
would travel with the connection to other code). If that connection drops,
PostgreSQL releases the lock and another scheduler takes over; this one notices on
its next check and stops acting until it wins the lock again.
"""

from __future__ import annotations

import logging
import time

import psycopg

from config import Settings
from db.availability import WAITING_LOG_INTERVAL
from db.pool import connect, first_line

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 7_311_208_554_020_133_002
LOCK_CONNECTION_USER_TIMEOUT_MS = 20_000


class LeaderLock:
    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self._conn: psycopg.Connection | None = None
        self.is_leader = False
        self._unreachable_since: float | None = None
        self._last_waiting_log = 0.0

    def refresh(self) -> bool:
        """Check (or try to take) leadership; True while this process is the leader."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
                self.is_leader = False
            if self.is_leader:
                self._conn.execute("SELECT 1")
            else:
                # A standby grants advisory locks too, but its own: a scheduler that
                # reached one (a URL without target_session_attrs=read-write) must not
                # lead beside the one that holds the lock on the primary (CASE: taken only
                # after the check).
                row = self._conn.execute(
                    "SELECT CASE WHEN pg_is_in_recovery() THEN false"
                    " ELSE pg_try_advisory_lock(%s) END AS won",
                    (LEADER_LOCK_KEY,),
                ).fetchone()
                self.is_leader = bool(row["won"])
                if self.is_leader:
                    log.info("scheduler %s is the leader", self.name)
            self._reached_database()
        except psycopg.Error as error:
            if self.is_leader:
                log.warning("scheduler %s lost leadership: %s", self.name, error)
            self.is_leader = False
            self.close()
            self._log_waiting(error)
        return self.is_leader

    def _log_waiting(self, error: psycopg.Error) -> None:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._last_waiting_log < WAITING_LOG_INTERVAL:
            return  # said every WAITING_LOG_INTERVAL, not on every retry
        self._last_waiting_log = now
        log.warning(
            "scheduler %s waiting for the database to take the leader lock"
            " (unreachable for %.0f s): %s",
            self.name,
            now - self._unreachable_since,
            first_line(error),
        )

    def _reached_database(self) -> None:
        if self._unreachable_since is not None:
            log.info(
                "scheduler %s reached the database again after %.0f s",
                self.name,
                time.monotonic() - self._unreachable_since,
            )
            self._unreachable_since = None

    def _connect(self) -> psycopg.Connection:
        # Keepalives let both sides notice a dead peer in seconds, not hours;
        # tcp_user_timeout bounds how long unacknowledged data may wait, so a leader
        # whose host vanished mid-query gives the lock up within ~30 s as well.
        return connect(
            self.settings,
            f"birthday-scheduler {self.name}",
            autocommit=True,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=LOCK_CONNECTION_USER_TIMEOUT_MS,
        )

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
        self.is_leader = False
