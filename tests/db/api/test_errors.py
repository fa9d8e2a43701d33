"""Errors that are not about the request: a crash and an unreachable database."""

from __future__ import annotations

import logging
import socket
import time

from api.resources import resources_of
from app import create_app


def test_an_unexpected_exception_is_a_json_500(db_url):
    app = create_app({"DATABASE_URL": db_url})  # not TESTING: errors are rendered

    def explode():
        raise RuntimeError("boom")

    app.add_url_rule("/explode", view_func=explode)
    try:
        response = app.test_client().get("/explode", headers={"X-Request-ID": "crash-1"})
    finally:
        resources_of(app).pool.close()

    assert response.status_code == 500
    body = response.get_json()
    assert (body["code"], body["status"]) == (500, "Internal Server Error")
    assert body["message"]
    assert body["request_id"] == "crash-1"  # the key to the traceback in the logs
    assert "boom" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_database_error_is_a_500_without_its_sql(db_url, caplog):
    app = create_app({"DATABASE_URL": db_url})
    resources_of(app).pool.open(wait=True, timeout=10)

    def bad_query():
        with resources_of(app).pool.connection() as conn:
            conn.execute("SELECT secret_column FROM users")
        return "unreachable"

    app.add_url_rule("/bad-query", view_func=bad_query)
    try:
        with caplog.at_level(logging.ERROR):
            response = app.test_client().get("/bad-query")
    finally:
        resources_of(app).pool.close()

    text = response.get_data(as_text=True)
    assert response.status_code == 500
    assert set(response.get_json()) == {"code", "status", "message", "request_id"}
    assert "secret_column" not in text
    assert "SELECT" not in text
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(error).__name__ for error in logged] == ["UndefinedColumn"]  # logs keep it


def test_an_unreachable_database_is_a_json_503_not_a_hang():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(
        {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x", "DB_POOL_TIMEOUT": 1}
    )
    try:
        started = time.monotonic()
        response = app.test_client().get("/users")
        elapsed = time.monotonic() - started
    finally:
        resources_of(app).pool.close()

    assert response.status_code == 503
    assert response.get_json()["code"] == 503
    assert response.get_json()["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"]
    assert elapsed < 3
