"""Log lines: one JSON object per line with the fields operators search, or one readable line."""

from __future__ import annotations

import json
import logging

import pytest

from log_setup import build_formatter, configure_logging


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
