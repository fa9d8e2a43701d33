"""Liveness and readiness endpoints for load balancers and operators."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api import auth, resources
from operations import health

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


def database_report(web: resources.WebResources) -> dict:
    """The database check of /health and /health/db."""
    return health.open_and_check_database(web.pool, web.migrations, web.settings)


def _run_checks(web: resources.WebResources) -> dict[str, dict]:
    """Every dependency at once, each bounded, so the answer comes within 3 s."""
    settings, pool = web.settings, web.pool
    pool.open()
    return health.run_checks(
        {
            "database": lambda: database_report(web),
            "rabbitmq": lambda: health.check_rabbitmq(settings),
            "redis": lambda: health.check_redis(settings),
            "scheduler": lambda: health.check_scheduler(pool, settings),
            "provider_breaker": lambda: health.check_breaker(settings),
        }
    )


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
        checks = _run_checks(resources.current())
        overall = health.overall_status(checks)
        code = 503 if overall == "unavailable" else 200
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
        report = database_report(resources.current())
        return report, 200 if report["status"] == "ok" else 503
