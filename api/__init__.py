"""HTTP blueprints; each module owns one resource."""

from flask import Flask
from flask_smorest import Api

from api import (
    docs,
    errors,
    greeting_templates,
    guards,
    health,
    messages,
    metrics,
    request_ids,
    status,
    suppressions,
    unsubscribe,
    user_import,
    users,
    webhooks,
)


def register(app: Flask, api: Api) -> None:
    """Attach every blueprint, the request guards and the error handlers."""
    api.register_blueprint(health.blp)
    api.register_blueprint(user_import.blp)
    api.register_blueprint(users.blp)
    api.register_blueprint(messages.blp)
    api.register_blueprint(greeting_templates.blp)
    api.register_blueprint(suppressions.blp)
    api.register_blueprint(webhooks.blp)
    api.register_blueprint(metrics.blp)
    metrics.init_app(app)
    app.register_blueprint(docs.blp)
    app.register_blueprint(unsubscribe.blp)
    status.init_app(app)
    request_ids.init_app(app)
    guards.register(app)
    errors.register(app)
