"""The scheduler's ear: woken when a write makes a greeting due sooner than it would look.

Migration 0012's trigger sends NOTIFY birthday_due when a greeting is planned or
retried to fall due within the hour. The scheduler LISTENs on a connection of its own
and waits on it instead of sleeping, so such a greeting is dispatched at its instant,
not at the next DISPATCH_INTERVAL_SECONDS. Without that connection (PostgreSQL away)
it sleeps as before and tries to listen again after RECONNECT_INTERVAL.
"""

from __future__ import annotations

import logging
import time

import psycopg

from config import Settings
from db.pool import connect

log = logging.getLogger(__name__)

CHANNEL = "birthday_due"
RECONNECT_INTERVAL = 5.0


class DueWatch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: psycopg.Connection | None = None
        self._retry_at = 0.0

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True as soon as a notice arrives (all pending ones taken)."""
        conn = self._listening()
        if conn is None:
            time.sleep(seconds)
            return False
        try:
            if next(conn.notifies(timeout=seconds, stop_after=1), None) is None:
                return False
            for _ in conn.notifies(timeout=0):  # several writes: one look is enough
                pass
            return True
        except psycopg.Error as error:
            log.warning("stopped listening for due greetings: %s", error)
            self.close()
            return False

    def _listening(self) -> psycopg.Connection | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() < self._retry_at:
            return None
        try:
            self._conn = connect(self.settings, "birthday-scheduler-due", autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as error:
            log.info("cannot listen for due greetings yet: %s", error)
            self.close()
            self._retry_at = time.monotonic() + RECONNECT_INTERVAL
            return None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
