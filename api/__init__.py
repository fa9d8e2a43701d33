"""HTTP blueprints; each module owns one resource."""

from flask_smorest import Api

from api import health


def register(api: Api) -> None:
    """Attach every blueprint to the API."""
    api.register_blueprint(health.blp)
