"""Checks every request passes before reaching a view: bearer token and JSON body."""

from __future__ import annotations

import hmac
import logging

from flask import Flask, current_app, request
from flask_smorest import abort

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The status page (api/status.py) checks its own access and CSRF token: its forms
# come from a browser, with neither a bearer header nor a JSON body.
SELF_GUARDED_BLUEPRINTS = frozenset({"status"})


def require_token_for_writes() -> None:
    """With API_TOKEN set, a write needs `Authorization: Bearer <token>`."""
    token = current_app.extensions["settings"].api_token
    if not token or request.method not in WRITE_METHODS:
        return
    if request.blueprint in SELF_GUARDED_BLUEPRINTS:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        abort(
            401,
            message="A valid bearer token is required for this request.",
            headers={"WWW-Authenticate": 'Bearer realm="birthday"'},
        )


def require_json_body() -> None:
    """A write that carries a body must say it is JSON (415 otherwise)."""
    if request.method not in WRITE_METHODS or request.blueprint in SELF_GUARDED_BLUEPRINTS:
        return
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if has_body and not request.is_json:
        abort(415, message="Send the request body as JSON (Content-Type: application/json).")


def register(app: Flask) -> None:
    """Run both checks before every request; warn when writes are open to anyone."""
    app.before_request(require_token_for_writes)
    app.before_request(require_json_body)
    if not app.extensions["settings"].api_token:
        log.warning("API_TOKEN is not set: writes are accepted without authentication")
