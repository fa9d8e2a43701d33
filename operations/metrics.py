"""Every Prometheus metric the service exports, declared in one place.

- the API (served on GET /metrics by api/metrics.py): HTTP requests and their
  latency, and gauges of the service's state read at scrape time (operations/state_metrics.py);
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LATENESS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 48 * 3600)

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


# --- Exposition -----------------------------------------------------------------------


def scrape(*collectors: Any) -> tuple[bytes, str]:
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
