"""Liveness and readiness endpoints for load balancers and operators."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime

import psycopg
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from psycopg_pool import PoolTimeout

from api import auth
from api.pool import current_pool
from services import health
from services.database_health import check_database

READINESS_DEADLINE = 2.7

blp = Blueprint(
    "health",
    __name__,
    description="Liveness and readiness of the service and its dependencies.",
)


class PoolStatsSchema(Schema):
    min = fields.Integer()
    max = fields.Integer()
    size = fields.Integer()
    available = fields.Integer()
    waiting = fields.Integer()


class MigrationStateSchema(Schema):
    current = fields.Integer(allow_none=True)
    pending = fields.Integer(allow_none=True)
    drifted = fields.List(fields.String())


class DatabaseHealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    reason = fields.String()
    latency_ms = fields.Float(allow_none=True)
    server_version = fields.String(allow_none=True)
    pool = fields.Nested(PoolStatsSchema)
    migrations = fields.Nested(MigrationStateSchema)


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    checks = fields.Dict(keys=fields.String(), values=fields.Dict())


class LiveSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


def _database_report() -> dict:
    return check_database(
        current_pool(),
        current_app.extensions["migrations"],
        timeout=current_app.extensions["settings"].health_db_timeout,
    )


def _scheduler_report(app) -> dict:
    settings = app.extensions["settings"]
    try:
        return health.check_scheduler(app.extensions["db_pool"], settings, datetime.now(UTC))
    except (PoolTimeout, psycopg.Error) as error:
        return {"status": "unknown", "reason": f"database unavailable: {error}"}


def _run_checks(app) -> dict[str, dict]:
    """Every dependency at once, each bounded, so the answer comes within 3 s."""
    settings = app.extensions["settings"]
    app.extensions["db_pool"].open()
    checks = {
        "database": lambda: _in_app(app, _database_report),
        "rabbitmq": lambda: health.check_rabbitmq(settings),
        "redis": lambda: health.check_redis(settings),
        "scheduler": lambda: _scheduler_report(app),
        "provider_breaker": lambda: health.check_breaker(settings),
    }
    executor = ThreadPoolExecutor(max_workers=len(checks))
    futures = {name: executor.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + READINESS_DEADLINE
    results = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            results[name] = {"status": "unavailable", "reason": "no answer in time"}
    executor.shutdown(wait=False, cancel_futures=True)
    return results


def _in_app(app, check):
    with app.app_context():
        return check()


@blp.route("/health/live")
class Live(MethodView):
    @blp.response(200, LiveSchema)
    def get(self):
        """Liveness: the process answers; no dependency is touched."""
        return {"status": "ok"}


@blp.route("/health")
class Readiness(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A dependency is down")
    def get(self):
        """Readiness: database, RabbitMQ, Redis, scheduler heartbeat and provider breaker.

        503 when one is unavailable; an open breaker only makes the service degraded.
        Open to anyone; with tokens configured, only a token's holder sees the reasons.
        """
        checks = _run_checks(current_app._get_current_object())
        statuses = {check["status"] for check in checks.values()}
        if statuses & {"unavailable", "unknown"}:
            overall, code = "unavailable", 503
        elif "degraded" in statuses:
            overall, code = "degraded", 200
        else:
            overall, code = "ok", 200
        if not auth.may_see_details():
            # Statuses only: reasons can name hosts, users and error texts.
            checks = {name: {"status": check["status"]} for name, check in checks.items()}
        return {"status": overall, "checks": checks}, code


@blp.route("/health/db")
class DatabaseHealth(MethodView):
    @blp.response(200, DatabaseHealthSchema)
    @blp.alt_response(503, schema=DatabaseHealthSchema, description="Database unavailable")
    def get(self):
        """PostgreSQL: latency, server version, pool statistics and migration state."""
        report = _database_report()
        return report, 200 if report["status"] == "ok" else 503
