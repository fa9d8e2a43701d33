"""Errors that are not about the request: a crash and an unreachable database."""

from __future__ import annotations

import socket
import time

from app import create_app


def test_an_unexpected_exception_is_a_json_500(db_url):
    app = create_app({"DATABASE_URL": db_url})  # not TESTING: errors are rendered

    def explode():
        raise RuntimeError("boom")

    app.add_url_rule("/explode", view_func=explode)
    try:
        response = app.test_client().get("/explode")
    finally:
        app.extensions["db_pool"].close()

    assert response.status_code == 500
    body = response.get_json()
    assert (body["code"], body["status"]) == (500, "Internal Server Error")
    assert body["message"]
    assert "boom" not in response.get_data(as_text=True)


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
        app.extensions["db_pool"].close()

    assert response.status_code == 503
    assert response.get_json()["code"] == 503
    assert response.headers["Retry-After"]
    assert elapsed < 3
