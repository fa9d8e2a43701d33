"""Checks every request passes before reaching a view: bearer token and JSON body."""

from __future__ import annotations

from flask import Flask, request
from flask_smorest import abort

from api import auth, resources

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The status and unsubscribe pages check their own access: their forms come from a
# browser (or a mail client), with neither a bearer header nor a JSON body.
SELF_GUARDED_BLUEPRINTS = auth.SELF_GUARDED_BLUEPRINTS
# Writes whose body is not JSON: the import takes CSV or NDJSON (api/user_import.py).
NOT_JSON_RULES = frozenset({"/users/import"})


def require_json_body() -> None:
    """A write that carries a body must say it is JSON (415 otherwise)."""
    if request.method not in WRITE_METHODS or request.blueprint in SELF_GUARDED_BLUEPRINTS:
        return
    if request.url_rule is not None and request.url_rule.rule in NOT_JSON_RULES:
        return  # CSV or NDJSON: the view checks its own content types
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if has_body and not request.is_json:
        message = "Send the request body as JSON (Content-Type: application/json)."
        abort(415, message=message, errors={"headers": {"Content-Type": [message]}})


def register(app: Flask) -> None:
    """Run both checks before every request; warn when the API is open to anyone."""
    app.before_request(auth.require_token)
    app.before_request(require_json_body)
    auth.warn_when_open(resources.resources_of(app).settings)
