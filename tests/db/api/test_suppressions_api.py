"""/suppressions: addresses never sent to; and what suppression does to greetings."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from delivery import attempts as delivery
from domain.delivery_policy import ChannelAnswer, Decision, Outcome, Verdict
from planning.all_users import plan_all
from tests.factories import assert_error, assert_field_error, create_user


def statuses(db, user_id: str) -> set[tuple[str, str, str | None]]:
    rows = db.execute(
        "SELECT message_type, status, error_message FROM message_logs WHERE user_id = %s",
        (user_id,),
    ).fetchall()
    return {(r["message_type"], r["status"], r["error_message"]) for r in rows}


def test_suppressing_an_address_cancels_its_pending_greetings_with_the_reason(client, db):
    user = create_user(client)

    response = client.post("/suppressions", json={"email": user["email"].upper()})

    assert response.status_code == 201
    body = response.get_json()
    assert (body["email"], body["reason"], body["source"]) == (user["email"], "manual", "api")
    assert statuses(db, user["id"]) == {
        ("BIRTHDAY", "CANCELLED", "address suppressed: manual"),
        ("ANNIVERSARY", "CANCELLED", "address suppressed: manual"),
    }


def test_suppressing_again_keeps_the_first_reason(client):
    client.post("/suppressions", json={"email": "ada@example.com", "reason": "complaint"})

    again = client.post("/suppressions", json={"email": "Ada@Example.com", "reason": "manual"})

    assert again.status_code == 200
    assert again.get_json()["reason"] == "complaint"
    assert client.get("/suppressions/ADA@example.com").get_json()["reason"] == "complaint"


def test_removing_an_address_plans_its_greetings_again(client, db):
    user = create_user(client)
    client.post("/suppressions", json={"email": user["email"]})

    response = client.delete(f"/suppressions/{user['email']}")

    assert response.status_code == 204
    assert {status for _, status, _ in statuses(db, user["id"])} == {"SCHEDULED"}
    assert_error(client.delete(f"/suppressions/{user['email']}"), 404)
    assert_error(client.get(f"/suppressions/{user['email']}"), 404)


def test_nothing_is_planned_for_a_suppressed_address(client, db, pool):
    user = create_user(client)
    client.post("/suppressions", json={"email": user["email"], "reason": "bounce"})

    plan_all(pool, datetime.now(UTC) + timedelta(days=400), time(9))

    assert "SCHEDULED" not in {status for _, status, _ in statuses(db, user["id"])}


def test_a_queued_greeting_of_a_suppressed_address_is_cancelled_when_taken(client, db, pool):
    user = create_user(client)
    db.execute(
        "UPDATE message_logs SET status = 'QUEUED', locked_until = now() + interval '5 min'"
        " WHERE user_id = %s",
        (user["id"],),
    )
    db.execute(
        "INSERT INTO suppressions (email, reason, source) VALUES (%s, 'bounce', 'api')",
        (user["email"],),
    )
    ids = [
        r["id"] for r in db.execute("SELECT id FROM message_logs WHERE user_id = %s", (user["id"],))
    ]

    taken = delivery.begin_sends(
        pool,
        [(message_id, None) for message_id in ids],
        None,
        lease=timedelta(minutes=2),
        max_lateness=timedelta(hours=48),
        send_time=time(9),
    )

    assert {(row["status"]) for row in taken} == {"CANCELLED"}
    assert {error for _, _, error in statuses(db, user["id"])} == {"address suppressed: bounce"}


def test_a_channels_no_such_recipient_suppresses_the_address(client, db, pool):
    user = create_user(client)
    db.execute(
        "UPDATE message_logs SET status = 'QUEUED', locked_until = now() + interval '5 min'"
        " WHERE user_id = %s AND message_type = 'BIRTHDAY'",
        (user["id"],),
    )
    [message_id] = [
        r["id"]
        for r in db.execute(
            "SELECT id FROM message_logs WHERE user_id = %s AND status = 'QUEUED'", (user["id"],)
        )
    ]
    [taken] = delivery.begin_sends(
        pool,
        [(message_id, None)],
        None,
        lease=timedelta(minutes=2),
        max_lateness=timedelta(hours=48),
        send_time=time(9),
    )
    refused = ChannelAnswer(
        Outcome.REFUSED,
        "no such recipient",
        code=550,
        detail="550 5.1.1 no such user",
        no_such_recipient=True,
    )

    delivery.record_outcome(
        pool, taken, Decision(Verdict.FAIL, reason="refused"), refused, datetime.now(UTC), time(9)
    )

    row = client.get(f"/suppressions/{user['email']}").get_json()
    assert (row["reason"], row["source"], row["detail"]) == (
        "no_such_recipient",
        "channel",
        "550 5.1.1 no such user",
    )
    assert ("ANNIVERSARY", "CANCELLED", "address suppressed: no_such_recipient") in statuses(
        db, user["id"]
    )


def test_the_list_pages_by_cursor_and_filters_by_reason(client):
    for n in range(5):
        reason = "bounce" if n % 2 else "manual"
        client.post("/suppressions", json={"email": f"p{n}@example.com", "reason": reason})

    first = client.get("/suppressions?page_size=2")
    second = client.get(f"/suppressions?page_size=2&after={first.headers['X-Next-Cursor']}")
    bounces = client.get("/suppressions?reason=bounce").get_json()

    emails = [r["email"] for r in first.get_json() + second.get_json()]
    assert len(emails) == len(set(emails)) == 4
    assert {r["email"] for r in bounces} == {"p1@example.com", "p3@example.com"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@example.com", "reason": "dislike"}, "reason"),
        ({"email": "a@example.com", "source": "me"}, "source"),
        ({}, "email"),
    ],
)
def test_a_bad_suppression_is_422_naming_the_field(client, body, field):
    assert_field_error(client.post("/suppressions", json=body), field)


def test_a_bad_reason_filter_is_422(client):
    response = client.get("/suppressions?reason=dislike")

    assert response.status_code == 422
    assert "reason" in response.get_json()["errors"]["query"]
