"""Worker metrics, served with Dramatiq's own on the Prometheus middleware's port
(`dramatiq_prom_port`, default 9191).

prometheus_client must be imported only after the middleware has set
PROMETHEUS_MULTIPROC_DIR in the worker process (it picks its storage at import), so
the metrics are built on first use, never at module import.
"""

from __future__ import annotations

import functools
import threading
from types import SimpleNamespace

LATENESS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 48 * 3600)


_build_lock = threading.Lock()


def _metrics() -> SimpleNamespace:
    # Under a lock: two threads registering the same metric would fail.
    with _build_lock:
        return _build_metrics()


@functools.cache
def _build_metrics() -> SimpleNamespace:
    import prometheus_client as prom

    return SimpleNamespace(
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


def count_send(outcome: str) -> None:
    _metrics().sends.labels(outcome).inc()


def observe_provider_call(seconds: float) -> None:
    _metrics().provider_latency.observe(seconds)


def observe_lateness(seconds: float) -> None:
    _metrics().lateness.observe(max(0.0, seconds))
