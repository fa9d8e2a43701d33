"""GET /metrics in the Prometheus text format, and the timing of every request.

The metrics themselves are declared in operations/metrics.py. Under gunicorn with
several workers, PROMETHEUS_MULTIPROC_DIR (set by deploy/gunicorn.conf.py before the
app is imported) makes every worker write its samples there and a scrape of any
worker reads them all. The state of the service (messages by status, due backlog,
scheduler, breaker, pool) is computed at scrape time from a few cheap queries,
cached for a few seconds.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from flask_smorest import Blueprint

from api import resources
from operations import metrics as service_metrics

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")


@blp.route("/metrics")
@blp.doc(responses={"200": {"description": "Prometheus text format"}})
def metrics() -> Response:
    """Prometheus metrics of the API processes and of the service's state."""
    body, content_type = service_metrics.scrape(resources.current().state_collector)
    return Response(body, mimetype=content_type)


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _record_request(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    started = g.pop("request_started", None)
    http = service_metrics.http()
    http.requests.labels(request.method, route, str(response.status_code)).inc()
    if started is not None:
        http.latency.labels(request.method, route).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Count and time every request."""
    service_metrics.http()  # declared now, so the first scrape lists them
    app.before_request(_start_timer)
    app.after_request(_record_request)
