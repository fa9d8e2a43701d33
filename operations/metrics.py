"""Every Prometheus metric the service exports, declared in one place.

- the API (served on GET /metrics by api/metrics.py): HTTP requests and their
  latency, and gauges of the service's state read at scrape time (`ServiceStateCollector`);
- the worker (served with Dramatiq's own on the Prometheus middleware's port,
  `dramatiq_prom_port`, default 9191): send outcomes, provider latency, lateness;
- the scheduler (served on SCHEDULER_METRICS_PORT): the leader flag, job times and
  failures, expiries and publishes.

prometheus_client picks its storage when it is first imported: per process, or in
PROMETHEUS_MULTIPROC_DIR when that is set (gunicorn's config and Dramatiq's
middleware set it before a worker process uses a metric). So nothing here imports it
at module import: each process's metrics are built on first use, under a lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from config import Settings
from operations import health
from repositories import service_state

LATENESS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 48 * 3600)
STATE_CACHE_SECONDS = 5.0
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}

_build_lock = threading.Lock()


@dataclass(frozen=True)
class HttpMetrics:
    requests: Any  # Counter by method, route template and status
    latency: Any  # Histogram by method and route template


@dataclass(frozen=True)
class WorkerMetrics:
    sends: Any  # Counter by outcome
    provider_latency: Any  # Histogram
    lateness: Any  # Histogram, LATENESS_BUCKETS


@dataclass(frozen=True)
class SchedulerMetrics:
    is_leader: Any  # Gauge
    job_success: Any  # Gauge by job
    job_failures: Any  # Counter by job
    expired: Any  # Counter
    published: Any  # Counter by job


class _BuiltOnce:
    """Calls `build` on first use only, under the lock; later calls take no lock."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._value: Any = None

    def __call__(self) -> Any:
        if self._value is None:
            with _build_lock:  # two threads registering the same metric would fail
                if self._value is None:
                    self._value = self._build()
        return self._value


def http() -> HttpMetrics:
    return _http()


def worker() -> WorkerMetrics:
    return _worker()


def scheduler() -> SchedulerMetrics:
    return _scheduler()


def _build_http() -> HttpMetrics:
    import prometheus_client as prom

    return HttpMetrics(
        requests=prom.Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
        ),
        latency=prom.Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
        ),
    )


def _build_worker() -> WorkerMetrics:
    import prometheus_client as prom

    return WorkerMetrics(
        sends=prom.Counter(
            "birthday_sends_total",
            "Send attempts by outcome (sent, retried, failed, expired, cancelled, postponed).",
            ["outcome"],
        ),
        provider_latency=prom.Histogram(
            "birthday_provider_request_duration_seconds",
            "Duration of calls to the email provider.",
        ),
        lateness=prom.Histogram(
            "birthday_send_lateness_seconds",
            "Actual send time minus scheduled send time of delivered greetings.",
            buckets=LATENESS_BUCKETS,
        ),
    )


def _build_scheduler() -> SchedulerMetrics:
    import prometheus_client as prom

    return SchedulerMetrics(
        is_leader=prom.Gauge(
            "birthday_scheduler_is_leader", "1 while this scheduler process leads."
        ),
        job_success=prom.Gauge(
            "birthday_scheduler_job_last_success_timestamp_seconds",
            "When each job last succeeded in this process.",
            ["job"],
        ),
        job_failures=prom.Counter(
            "birthday_scheduler_job_failures_total", "Jobs that raised.", ["job"]
        ),
        expired=prom.Counter(
            "birthday_sends_expired_total",
            "Greetings found later than MAX_LATENESS and expired.",
        ),
        published=prom.Counter(
            "birthday_greetings_published_total",
            "Greetings this scheduler published to the work queue, by the job that did.",
            ["job"],
        ),
    )


_http = _BuiltOnce(_build_http)
_worker = _BuiltOnce(_build_worker)
_scheduler = _BuiltOnce(_build_scheduler)


# --- The worker's observations ------------------------------------------------------


def count_send(outcome: str) -> None:
    worker().sends.labels(outcome).inc()


def observe_provider_call(seconds: float) -> None:
    worker().provider_latency.observe(seconds)


def observe_lateness(seconds: float) -> None:
    worker().lateness.observe(max(0.0, seconds))


# --- The service's state, read at scrape time -----------------------------------------


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


# --- Exposition -----------------------------------------------------------------------


def scrape(*collectors: ServiceStateCollector) -> tuple[bytes, str]:
    """This process's metrics (every process's under PROMETHEUS_MULTIPROC_DIR) and
    `collectors`' in the text format, with its content type."""
    import prometheus_client as prom
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prom.REGISTRY
    for collector in collectors:
        registry.register(collector)
    try:
        return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
    finally:
        for collector in collectors:
            registry.unregister(collector)


def serve(port: int) -> None:
    """Serve this process's metrics over HTTP on `port` (raises OSError if it is taken)."""
    import prometheus_client as prom

    prom.start_http_server(port)


def forget_process(pid: int) -> None:
    """Drop the live gauges of a process that exited (under PROMETHEUS_MULTIPROC_DIR)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
