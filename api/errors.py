"""Every error leaves the API as JSON: {"code", "status", "message", "errors"?}.

flask-smorest renders HTTPExceptions (unknown routes, 401, 403, 405, 413, 422, 500 …);
this module adds a message where it has none and maps domain errors to the same shape.
A 5xx also carries "request_id", the key to its log lines (the traceback stays there).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import psycopg
from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue
from flask_smorest import Api
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from api import resources
from db.pool import database_label
from errors import Conflict, DomainError, InvalidField, NotFound

log = logging.getLogger(__name__)

_HEADER_FIELDS = {"Idempotency-Key", "Authorization"}


class JsonErrorApi(Api):
    """flask-smorest's Api whose error bodies always carry a message."""

    def handle_http_exception(self, error: HTTPException) -> ResponseReturnValue:
        payload, code, headers = super().handle_http_exception(error)
        if "message" not in payload:
            payload["message"] = _default_message(error)
        if code >= 500:
            payload["request_id"] = g.get("request_id")
        return payload, code, headers


def _default_message(error: HTTPException) -> str:
    if error.code == 422:
        return "The request is invalid: see errors."
    if error.code == 400 and getattr(error, "data", None):
        return "The request body could not be read: see errors."
    return error.description or HTTPStatus(error.code).phrase


def _status_for(error: DomainError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, InvalidField):
        return 422
    return 400


def handle_domain_error(error: DomainError) -> ResponseReturnValue:
    """A domain error as the same JSON shape, naming the field when there is one."""
    code = _status_for(error)
    payload = {"code": code, "status": HTTPStatus(code).phrase, "message": error.message}
    field_errors = error.field_errors
    if field_errors:
        location = error.location or ("headers" if set(field_errors) <= _HEADER_FIELDS else "json")
        payload["errors"] = {location: field_errors}
    return jsonify(payload), code


def handle_database_unavailable(error: Exception) -> ResponseReturnValue:
    """No database connection in time, or it broke mid-request: unavailable, not broken."""
    label = database_label(resources.current().pool)
    log.error("database %s unavailable: %s: %s", label, type(error).__name__, error)
    payload = {
        "code": 503,
        "status": HTTPStatus.SERVICE_UNAVAILABLE.phrase,
        "message": "The database is unavailable; try again shortly.",
        "request_id": g.get("request_id"),
    }
    return jsonify(payload), 503, {"Retry-After": "5"}


def register(app: Flask) -> None:
    """Install the handlers for domain errors and database unavailability."""
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(PoolTimeout, handle_database_unavailable)
    # A connection lost mid-request (a server restart, a statement timeout) is
    # unavailability too; other database errors stay 500s.
    app.register_error_handler(psycopg.OperationalError, handle_database_unavailable)
