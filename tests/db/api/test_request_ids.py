"""Request ids in logs: echoed to the caller, made up when missing, carried by log lines."""

from __future__ import annotations

import io
import json
import logging

from log_setup import RequestIdFilter, build_formatter


def test_a_request_id_is_echoed_and_made_up_when_missing(client):
    given = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    made_up = client.get("/health/live")
    hostile = client.get("/health/live", headers={"X-Request-ID": "x" * 500})

    assert given.headers["X-Request-ID"] == "abc-123"
    assert len(made_up.headers["X-Request-ID"]) == 32
    assert hostile.headers["X-Request-ID"] != "x" * 500


def test_log_lines_inside_a_request_carry_its_request_id(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter("json"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("api.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    @app.get("/log-something")
    def log_something():
        logger.info("inside")
        return {}

    try:
        app.test_client().get("/log-something", headers={"X-Request-ID": "req-42"})
    finally:
        logger.removeHandler(handler)

    assert json.loads(stream.getvalue())["request_id"] == "req-42"
