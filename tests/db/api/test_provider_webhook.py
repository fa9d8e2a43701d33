"""POST /webhooks/provider: signed provider events, each applied once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from api.resources import resources_of
from app import create_app
from config import LOCAL_WEBHOOK_SECRET
from recipients.webhook_signatures import signature
from tests.factories import create_user

SECRET = LOCAL_WEBHOOK_SECRET  # what the app uses with no tokens and no WEBHOOK_SECRET


def event(**fields) -> dict:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "bounce",
        "bounce_type": "hard",
        "email": "ada@example.com",
        "at": datetime.now(UTC).isoformat(),
        **fields,
    }


def signed(body: bytes, secrets: list[str] | None = None, at: int | None = None) -> dict:
    timestamp = str(at if at is not None else int(time.time()))
    values = " ".join(f"v1={signature(s, timestamp, body)}" for s in (secrets or [SECRET]))
    return {
        "Content-Type": "application/json",
        "Webhook-Timestamp": timestamp,
        "Webhook-Signature": values,
    }


def post(client, payload, **signing):
    body = json.dumps(payload).encode()
    return client.post("/webhooks/provider", data=body, headers=signed(body, **signing))


def suppressed(db) -> dict[str, str]:
    rows = db.execute("SELECT email, reason, source FROM suppressions").fetchall()
    return {r["email"]: (r["reason"], r["source"]) for r in rows}


def test_a_hard_bounce_suppresses_the_address_and_cancels_its_greetings(client, db):
    user = create_user(client, email="ada@example.com")

    response = post(client, event(email="ADA@example.com"))

    assert response.status_code == 200
    assert response.get_json() == {"accepted": 1, "duplicates": 0}
    assert suppressed(db) == {"ada@example.com": ("bounce", "webhook")}
    rows = db.execute("SELECT status FROM message_logs WHERE user_id = %s", (user["id"],))
    assert {r["status"] for r in rows} == {"CANCELLED"}


def test_a_replayed_event_changes_nothing(client, db):
    create_user(client, email="ada@example.com")
    bounce = event()
    post(client, bounce)
    client.delete("/suppressions/ada@example.com")  # an operator lifted it meanwhile

    replay = post(client, bounce)

    assert replay.status_code == 200
    assert replay.get_json() == {"accepted": 0, "duplicates": 1}
    assert suppressed(db) == {}


def test_a_soft_bounce_is_recorded_and_suppresses_nothing(client, db):
    response = post(client, event(bounce_type="soft"))

    assert response.get_json()["accepted"] == 1
    assert suppressed(db) == {}
    recorded = db.execute("SELECT type, bounce_type FROM provider_events").fetchall()
    assert [(r["type"], r["bounce_type"]) for r in recorded] == [("bounce", "soft")]


def test_a_complaint_suppresses_the_address(client, db):
    post(client, event(type="complaint", bounce_type=None))

    assert suppressed(db) == {"ada@example.com": ("complaint", "webhook")}


def test_delivered_stamps_the_greeting_it_names(client, db):
    user = create_user(client, email="ada@example.com")
    message = client.get(f"/users/{user['id']}/messages").get_json()[0]
    at = "2026-12-10T09:00:03+00:00"

    post(
        client,
        event(
            type="delivered", bounce_type=None, idempotency_key=message["idempotency_key"], at=at
        ),
    )

    shown = client.get(f"/messages/{message['id']}").get_json()
    assert shown["delivered_at"] == at
    assert suppressed(db) == {}


def test_an_array_of_events_is_applied_in_one_request(client, db):
    events = [event(email=f"e{n}@example.com") for n in range(3)]

    response = post(client, events)

    assert response.get_json() == {"accepted": 3, "duplicates": 0}
    assert len(suppressed(db)) == 3


def test_while_a_secret_is_rotated_any_one_matching_value_is_enough(client, db):
    response = post(client, event(), secrets=["a-secret-we-never-had-0123", SECRET])

    assert response.status_code == 200 and len(suppressed(db)) == 1


def _refused(client, db, body: bytes, headers: dict) -> None:
    response = client.post("/webhooks/provider", data=body, headers=headers)
    assert response.status_code == 401, response.get_json()
    assert "Webhook-Signature" in response.get_json()["errors"]["headers"]
    assert suppressed(db) == {}
    assert db.execute("SELECT count(*) AS n FROM provider_events").fetchone()["n"] == 0


BODY = json.dumps(event()).encode()


def _now() -> int:
    return int(time.time())


# Built when the test runs: a timestamp taken at collection would age while others run.
@pytest.mark.parametrize(
    "make_headers",
    [
        lambda: {"Content-Type": "application/json"},
        lambda: {**signed(BODY), "Webhook-Signature": ""},
        lambda: {**signed(BODY), "Webhook-Signature": "v1=" + "0" * 64},
        lambda: {**signed(BODY), "Webhook-Signature": "v0=" + signature(SECRET, str(_now()), BODY)},
        lambda: {**signed(BODY), "Webhook-Timestamp": "soon"},
        lambda: {**signed(BODY), "Webhook-Timestamp": "١٢٣"},
        lambda: signed(BODY, secrets=["another-providers-secret-01"]),
        lambda: signed(BODY, at=_now() - 301),
        lambda: signed(BODY, at=_now() + 301),
        lambda: signed(b'{"other": "body"}'),
    ],
)
def test_a_request_without_a_valid_signature_is_401_and_changes_nothing(client, db, make_headers):
    _refused(client, db, BODY, make_headers())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "bounce"}, "id"),
        (event(type="opened"), "type"),
        (event(bounce_type=None), "bounce_type"),
        (event(email="nobody"), "email"),
        (event(at="yesterday"), "at"),
        (event(at="2026-12-10T09:00:00"), "at"),
    ],
)
def test_a_signed_but_invalid_event_is_422_naming_the_field_and_applies_nothing(
    client, db, payload, field
):
    response = post(client, [event(), payload])

    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]["1"]
    assert suppressed(db) == {}


@pytest.mark.parametrize("body", [b"not json", b"[" * 50_000, b"[]", b"3"])
def test_a_signed_body_that_holds_no_events_is_refused_with_a_4xx(client, db, body):
    response = client.post("/webhooks/provider", data=body, headers=signed(body))

    assert response.status_code in (400, 422)
    assert suppressed(db) == {}


def test_with_tokens_set_and_no_webhook_secret_every_request_is_refused(db_url, db):
    app = create_app({"DATABASE_URL": db_url, "API_TOKENS": "w" * 24})
    resources_of(app).pool.open(wait=True, timeout=10)
    try:
        response = post(app.test_client(), event())
    finally:
        resources_of(app).pool.close()

    assert response.status_code == 401
    assert "WEBHOOK_SECRET" in response.get_json()["message"]
    assert suppressed(db) == {}


def test_with_tokens_and_a_webhook_secret_no_bearer_token_is_needed(db_url, db):
    secret = "the-providers-shared-secret-01"
    app = create_app({"DATABASE_URL": db_url, "API_TOKENS": "w" * 24, "WEBHOOK_SECRET": secret})
    resources_of(app).pool.open(wait=True, timeout=10)
    try:
        response = post(app.test_client(), event(), secrets=[secret])
    finally:
        resources_of(app).pool.close()

    assert response.status_code == 200
    assert suppressed(db) == {"ada@example.com": ("bounce", "webhook")}
