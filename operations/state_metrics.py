"""Gauges of the service's state, read from the database at scrape time for the API's
GET /metrics (at most every STATE_CACHE_SECONDS per process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from config import Settings
from domain.occasions import OCCASIONS
from operations import health
from repositories import service_state
from repositories.suppressions import REASONS as SUPPRESSION_REASONS

STATE_CACHE_SECONDS = 5.0
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class ServiceStateCollector:
    """Gauges read from PostgreSQL and Redis at scrape time (cached briefly).

    A prometheus_client collector: `collect()` yields metric families.
    """

    def __init__(self, pool: ConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None

    def describe(self) -> list:
        """Nothing up front: registering the collector must not query the database."""
        return []

    def collect(self) -> Iterator:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > STATE_CACHE_SECONDS:
                self._cached = (time.monotonic(), self._read())
            yield from self._cached[1]

    def forget(self) -> None:
        """Read afresh at the next scrape."""
        with self._lock:
            self._cached = None

    def _read(self) -> list:
        with self.pool.connection(timeout=2) as conn:
            state = service_state.read(conn, datetime.now(UTC))
        breaker = health.check_breaker(self.settings).get("state", "unknown")
        stats = self.pool.get_stats()
        return [
            _gauge(
                "birthday_messages",
                "Messages of recent and coming occasions by status and type.",
                ["status", "message_type"],
                [((r["status"], r["message_type"]), r["count"]) for r in state["by_status"]],
            ),
            _gauge(
                "birthday_unsubscribed_users",
                "Live users opted out of each occasion.",
                ["message_type"],
                [((t,), state["recipients"]["unsubscribed"].get(t, 0)) for t in OCCASIONS.types],
            ),
            _gauge(
                "birthday_suppressed_addresses",
                "Addresses on the suppression list, by reason.",
                ["reason"],
                [((r,), state["recipients"]["suppressed"].get(r, 0)) for r in SUPPRESSION_REASONS],
            ),
            _gauge(
                "birthday_due_backlog",
                "Greetings due now and not yet queued.",
                [],
                [((), state["due_backlog"])],
            ),
            _gauge(
                "birthday_oldest_due_age_seconds",
                "Age of the oldest due greeting.",
                [],
                [((), state["oldest_due_age_seconds"])],
            ),
            _gauge(
                "birthday_scheduler_last_success_timestamp_seconds",
                "Last successful run of each scheduler job.",
                ["job"],
                [((r["job"],), r["last_success"] or 0) for r in state["jobs"]],
            ),
            _gauge(
                "birthday_scheduler_leader",
                "The scheduler that leads (1).",
                ["leader"],
                [((r["leader"],), 1) for r in state["jobs"][:1]],
            ),
            _gauge(
                "birthday_partition_default_has_rows",
                "1 when the DEFAULT partition of message_logs holds rows"
                " (their month has no partition).",
                [],
                [((), int(state["default_partition_has_rows"]))],
            ),
            _gauge(
                "birthday_partitions_future",
                "Monthly partitions of message_logs that start after the current month.",
                [],
                [((), state["future_partitions"])],
            ),
            _gauge(
                "birthday_provider_breaker_state",
                "0 closed, 1 half-open, 2 open, -1 unknown.",
                [],
                [((), BREAKER_STATES.get(breaker, -1))],
            ),
            _gauge(
                "birthday_db_pool_connections",
                "This process's pool: size, available, waiting.",
                ["kind"],
                [
                    (("size",), stats.get("pool_size", 0)),
                    (("available",), stats.get("pool_available", 0)),
                    (("waiting",), stats.get("requests_waiting", 0)),
                ],
            ),
        ]


def _gauge(name: str, doc: str, labels: list[str], samples: Iterable) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in samples:
        family.add_metric(list(label_values), float(value))
    return family
