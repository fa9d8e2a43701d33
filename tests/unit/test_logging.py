"""Logs: one JSON object per line with the fields operators search, request ids echoed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from log_setup import RequestIdFilter, build_formatter, configure_logging


def _render(log_format: str, **extra) -> str:
    record = logging.LogRecord(
        "tasks.send", logging.INFO, __file__, 1, "greeting %s", ("SENT",), None
    )
    for name, value in extra.items():
        setattr(record, name, value)
    return build_formatter(log_format).format(record)


def test_a_json_line_has_timestamp_level_logger_message_and_the_ids_given():
    line = json.loads(_render("json", message_id=7, idempotency_key="u:BIRTHDAY:2026-11-26"))

    assert line["level"] == "INFO"
    assert line["logger"] == "tasks.send"
    assert line["message"] == "greeting SENT"
    assert line["timestamp"]
    assert (line["message_id"], line["idempotency_key"]) == (7, "u:BIRTHDAY:2026-11-26")


def test_text_format_is_one_readable_line():
    line = _render("text")

    assert "INFO tasks.send greeting SENT" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_configure_logging_writes_json_lines_to_stderr(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("some.module").info("hello %s", "there", extra={"user_id": "u1"})

    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if "hello" in x]
    assert line["message"] == "hello there" and line["user_id"] == "u1"


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
