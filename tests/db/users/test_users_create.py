"""The /users API, creating and reading: POST /users, GET /users/<id>, request bodies and
unknown routes, through the Flask test client on the real PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from tests.factories import (
    OMIT,
    USER_FIELDS,
    assert_error,
    count_users,
    create_user,
    delete_user,
    parse_time,
    user_payload,
)

# --- POST /users ---------------------------------------------------------------------------


def test_creating_a_user_returns_201_with_every_field_and_a_location_header(client, db_url):
    payload = user_payload(first_name="Ada", last_name="Lovelace", email="ada@example.com")

    response = client.post("/users", json=payload)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert response.headers["Location"] == f"/users/{body['id']}"
    assert uuid.UUID(body["id"])
    for field in (
        "first_name",
        "last_name",
        "email",
        "timezone",
        "birthday_date",
        "anniversary_date",
        "location_city",
        "location_country",
    ):
        assert body[field] == payload[field]
    assert parse_time(body["created_at"]).tzinfo is not None
    assert body["created_at"] == body["updated_at"]
    assert count_users(db_url) == 1


def test_optional_fields_left_out_of_a_create_come_back_null(client):
    body = create_user(client, anniversary_date=OMIT, location_city=OMIT, location_country=OMIT)

    assert body["anniversary_date"] is None
    assert body["location_city"] is None
    assert body["location_country"] is None
    assert body["birthday_date"] == "1990-12-10"


def test_creating_a_user_with_the_email_of_a_live_user_is_a_conflict(client, db_url):
    create_user(client, email="ada@example.com")

    response = client.post("/users", json=user_payload(email="ada@example.com"))

    body = assert_error(response, 409)
    assert "email" in body["errors"]["json"]
    assert count_users(db_url) == 1


def test_an_email_differing_only_in_case_and_whitespace_is_a_conflict(client, db_url):
    create_user(client, email="ada@example.com")

    response = client.post("/users", json=user_payload(email=" ADA@Example.COM "))

    assert_error(response, 409)
    assert count_users(db_url) == 1


def test_concurrent_creates_with_the_same_email_make_exactly_one_user(app, db_url):
    threads = 8
    barrier = threading.Barrier(threads)
    payloads = [user_payload(email="race@example.com") for _ in range(threads)]

    def post(payload: dict[str, Any]) -> int:
        client = app.test_client()
        barrier.wait(timeout=10)
        return client.post("/users", json=payload).status_code

    with ThreadPoolExecutor(max_workers=threads) as executor:
        statuses = list(executor.map(post, payloads))

    assert sorted(statuses) == [201] + [409] * (threads - 1)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM users WHERE lower(email) = 'race@example.com'"
        ).fetchone()[0]
    assert rows == 1
    assert count_users(db_url) == 1


# --- GET /users/<id> -----------------------------------------------------------------------


def test_a_created_user_can_be_read_back_by_id(client):
    created = create_user(client)

    response = client.get(f"/users/{created['id']}")

    assert response.status_code == 200
    assert response.get_json() == created


def test_reading_an_unknown_user_is_404(client):
    create_user(client)

    assert_error(client.get(f"/users/{uuid.uuid4()}"), 404)


def test_reading_a_malformed_user_id_is_404(client):
    assert_error(client.get("/users/not-a-uuid"), 404)


def test_reading_a_deleted_user_is_404(client):
    created = create_user(client)
    delete_user(client, created["id"])

    assert_error(client.get(f"/users/{created['id']}"), 404)


# --- request bodies ------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_415(client, db_url):
    response = client.post("/users", data="first_name=Ada", content_type="text/plain")

    assert_error(response, 415)
    assert count_users(db_url) == 0


def test_a_patch_body_that_is_not_json_is_415(client):
    created = create_user(client)

    response = client.patch(
        f"/users/{created['id']}", data="first_name=Ada", content_type="text/plain"
    )

    assert_error(response, 415)
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_malformed_json_is_400(client, db_url):
    response = client.post("/users", data='{"first_name": "Ada",', content_type="application/json")

    assert_error(response, 400)
    assert count_users(db_url) == 0


def test_a_json_body_that_is_not_an_object_is_422(client, db_url):
    response = client.post("/users", json=["Ada", "Lovelace"])

    assert_error(response, 422)
    assert count_users(db_url) == 0


def test_a_body_larger_than_64_kib_is_413(client, db_url):
    body = json.dumps(user_payload(location_city="x" * (64 * 1024)))

    response = client.post("/users", data=body, content_type="application/json")

    assert_error(response, 413)
    assert count_users(db_url) == 0


# --- errors in general ---------------------------------------------------------------------


def test_an_unknown_route_is_404_json(client):
    assert_error(client.get("/nope"), 404)


def test_a_method_the_route_lacks_is_405_json(client):
    assert_error(client.delete("/users"), 405)
