"""Logging for every process: one JSON object per line (or text with LOG_FORMAT=text).

Each record carries timestamp, level, logger and message, plus whatever ids the
code passes in `extra` (message_id, user_id, idempotency_key) and, inside an HTTP
request, its request_id. Greeting texts and email addresses are never logged at INFO.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
# pika narrates every connection at INFO, psycopg.pool every checkout; their
# warnings (a refused connection, a lost one) still show.
QUIET_LOGGERS = ("pika", "psycopg.pool")


class RequestIdFilter(logging.Filter):
    """Adds the current HTTP request's id, when there is one, to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            from flask import g, has_request_context

            if has_request_context():
                record.request_id = g.get("request_id")
        return True


def build_formatter(log_format: str) -> logging.Formatter:
    """JSON with the field names operators search for, or plain text."""
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


class _ServiceHandler(logging.StreamHandler):
    """Our stderr handler, recognisable when logging is configured again."""


def configure_logging(level: str, log_format: str) -> None:
    """One stderr handler in the chosen format on the root logger.

    Replaces plain stream handlers (a previous call's, or the one the dramatiq CLI
    installs with basicConfig) and leaves specialised ones alone (pytest's capture).
    """
    handler = _ServiceHandler(sys.stderr)
    handler.setFormatter(build_formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if type(existing) in (logging.StreamHandler, _ServiceHandler):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
