"""GET /messages, /messages/<id>, /users/<id>/messages and POST /messages/<id>/retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

MESSAGE_FIELDS = {
    "id",
    "user_id",
    "message_type",
    "occasion_date",
    "message_content",
    "subject",
    "delivered_at",
    "scheduled_send_time",
    "actual_send_time",
    "status",
    "retry_count",
    "api_response_code",
    "error_message",
    "idempotency_key",
}


def create_user(client, email: str, **overrides) -> dict:
    body = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": email,
        "timezone": "Europe/London",
        "birthday_date": "1990-12-10",
        **overrides,
    }
    response = client.post("/users", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def set_status(db_url: str, message_id: int, status: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE message_logs SET status = %s WHERE id = %s", (status, message_id))


def insert_history(db_url: str, user_id: str, day: str, status: str) -> int:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            """
            INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                                      scheduled_send_time, status, idempotency_key)
            VALUES (%(u)s, 'BIRTHDAY', %(d)s, 'Hey', %(d)s::date + time '09:00', %(s)s,
                    message_idempotency_key(%(u)s, 'BIRTHDAY', %(d)s))
            RETURNING id
            """,
            {"u": user_id, "d": day, "s": status},
        ).fetchone()["id"]


def test_a_users_messages_list_their_planned_greetings(client):
    user = create_user(client, "ada@example.com", anniversary_date="2015-06-20")

    response = client.get(f"/users/{user['id']}/messages")

    body = response.get_json()
    assert response.status_code == 200
    assert {m["message_type"] for m in body} == {"BIRTHDAY", "ANNIVERSARY"}
    assert all(set(m) == MESSAGE_FIELDS for m in body)
    assert all(m["status"] == "SCHEDULED" and m["user_id"] == user["id"] for m in body)
    assert json.loads(response.headers["X-Pagination"])["total"] == 2


@pytest.mark.parametrize("user_id", ["00000000-0000-4000-8000-000000000000", "deleted"])
def test_messages_of_an_unknown_or_deleted_user_are_404(client, user_id):
    if user_id == "deleted":
        user_id = create_user(client, "gone@example.com")["id"]
        client.delete(f"/users/{user_id}")

    response = client.get(f"/users/{user_id}/messages")

    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_one_message_by_id_and_404_for_an_unknown_id(client):
    user = create_user(client, "ada@example.com")
    [planned] = client.get(f"/users/{user['id']}/messages").get_json()

    found = client.get(f"/messages/{planned['id']}")
    missing = client.get("/messages/987654321")

    assert found.status_code == 200
    assert found.get_json() == planned
    assert missing.status_code == 404


def test_messages_filter_by_status_type_and_occasion_dates(client, db_url):
    user = create_user(client, "ada@example.com", anniversary_date="2015-06-20")
    sent = insert_history(db_url, user["id"], "2025-12-10", "SENT")
    insert_history(db_url, user["id"], "2024-12-10", "FAILED")

    by_status = client.get("/messages?status=SENT").get_json()
    by_type = client.get("/messages?type=ANNIVERSARY").get_json()
    by_dates = client.get("/messages?from=2024-01-01&to=2025-12-31").get_json()

    assert [m["id"] for m in by_status] == [sent]
    assert [m["message_type"] for m in by_type] == ["ANNIVERSARY"]
    assert [m["occasion_date"] for m in by_dates] == ["2025-12-10", "2024-12-10"]


@pytest.mark.parametrize(
    "query", ["status=LOST", "type=WEDDING", "from=yesterday", "from=2026-02-01&to=2026-01-01"]
)
def test_bad_message_filters_are_422(client, query):
    response = client.get(f"/messages?{query}")

    assert response.status_code == 422
    assert response.get_json()["errors"]["query"]


def test_messages_are_paginated(client):
    for n in range(3):
        create_user(client, f"user{n}@example.com", anniversary_date="2015-06-20")

    first = client.get("/messages?page_size=4")
    last = client.get("/messages?page_size=4&page=2")

    pagination = json.loads(first.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"]) == (6, 2)
    ids = [m["id"] for m in first.get_json()] + [m["id"] for m in last.get_json()]
    assert len(ids) == len(set(ids)) == 6


def test_numbered_pages_of_filtered_messages_are_its_rows_in_order_each_whole(client):
    for n in range(5):
        create_user(client, f"user{n}@example.com", anniversary_date="2015-06-20")

    everything = client.get("/messages?type=ANNIVERSARY&page_size=100").get_json()
    pages = [client.get(f"/messages?type=ANNIVERSARY&page_size=2&page={n}") for n in (1, 2, 3)]

    assert len(everything) == 5
    assert {message["message_type"] for message in everything} == {"ANNIVERSARY"}
    assert [message for response in pages for message in response.get_json()] == everything


@pytest.mark.parametrize("status", ["FAILED", "EXPIRED"])
def test_retrying_a_failed_or_expired_message_makes_it_due_now(client, db_url, status):
    user = create_user(client, "ada@example.com")
    message_id = insert_history(db_url, user["id"], "2025-12-10", status)
    before = datetime.now(UTC)

    response = client.post(f"/messages/{message_id}/retry")

    assert response.status_code == 200
    assert response.get_json()["status"] == "SCHEDULED"
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT next_attempt_at, retry_count FROM message_logs WHERE id = %s", (message_id,)
        ).fetchone()
    assert before <= row["next_attempt_at"] <= datetime.now(UTC)
    assert row["retry_count"] == 0


@pytest.mark.parametrize("status", ["SCHEDULED", "SENT", "SENDING", "CANCELLED"])
def test_retrying_a_message_in_another_state_is_409(client, db_url, status):
    user = create_user(client, "ada@example.com")
    message_id = insert_history(db_url, user["id"], "2025-12-10", status)

    response = client.post(f"/messages/{message_id}/retry")

    assert response.status_code == 409
    assert status in response.get_json()["message"]


def test_retrying_an_unknown_message_is_404(client):
    assert client.post("/messages/424242/retry").status_code == 404
