"""GET /metrics in the Prometheus text format, and the HTTP request metrics.

Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR (set by
deploy/gunicorn.conf.py before the app is imported) makes every worker write its
samples there and a scrape of any worker reads them all. The state of the service
(messages by status, due backlog, scheduler, breaker, pool) is computed at scrape
time from a few cheap queries, cached for a few seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request
from flask_smorest import Blueprint
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from repositories import service_state
from services import health

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["method", "route"],
)
STATE_CACHE_SECONDS = 5.0
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")


class ServiceStateCollector(Collector):
    """Gauges read from PostgreSQL and Redis at scrape time (cached briefly)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > STATE_CACHE_SECONDS:
                self._cached = (time.monotonic(), self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        settings = self.app.extensions["settings"]
        pool = self.app.extensions["db_pool"]
        with pool.connection(timeout=2) as conn:
            state = service_state.read(conn, datetime.now(UTC))
        families = [
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
        ]
        breaker = health.check_breaker(settings).get("state", "unknown")
        families.append(
            _gauge(
                "birthday_provider_breaker_state",
                "0 closed, 1 half-open, 2 open, -1 unknown.",
                [],
                [((), BREAKER_STATES.get(breaker, -1))],
            )
        )
        stats = pool.get_stats()
        pool_samples = [
            (("size",), stats.get("pool_size", 0)),
            (("available",), stats.get("pool_available", 0)),
            (("waiting",), stats.get("requests_waiting", 0)),
        ]
        families.append(
            _gauge(
                "birthday_db_pool_connections",
                "This process's pool: size, available, waiting.",
                ["kind"],
                pool_samples,
            )
        )
        return families


def _gauge(name: str, doc: str, labels: list[str], samples: list) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in samples:
        family.add_metric(list(label_values), float(value))
    return family


@blp.route("/metrics")
@blp.doc(responses={"200": {"description": "Prometheus text format"}})
def metrics() -> Response:
    """Prometheus metrics of the API processes and of the service's state."""
    registry = _scrape_registry()
    registry.register(current_app.extensions["state_collector"])
    try:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    finally:
        registry.unregister(current_app.extensions["state_collector"])


def _scrape_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _record_request(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    started = g.pop("request_started", None)
    HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    if started is not None:
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Count and time every request; keep one state collector per app."""
    app.extensions["state_collector"] = ServiceStateCollector(app)
    app.before_request(_start_timer)
    app.after_request(_record_request)
