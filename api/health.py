"""Liveness and readiness endpoints for load balancers and operators."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from db.health import check_database
from db.pool import current_pool

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
        """Readiness: one entry per dependency; 503 when any is unavailable."""
        checks = {"database": _database_report()}
        healthy = all(check["status"] == "ok" for check in checks.values())
        return {"status": "ok" if healthy else "unavailable", "checks": checks}, (
            200 if healthy else 503
        )


@blp.route("/health/db")
class DatabaseHealth(MethodView):
    @blp.response(200, DatabaseHealthSchema)
    @blp.alt_response(503, schema=DatabaseHealthSchema, description="Database unavailable")
    def get(self):
        """PostgreSQL: latency, server version, pool statistics and migration state."""
        report = _database_report()
        return report, 200 if report["status"] == "ok" else 503
