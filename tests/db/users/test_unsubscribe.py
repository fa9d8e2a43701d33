"""Opting out of an occasion, and back in: POST /users/<id>/unsubscribe, /resubscribe."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from delivery import attempts as delivery
from planning.all_users import plan_all
from tests.factories import assert_error, assert_field_error, create_user


def greetings(db, user_id: str) -> dict[str, tuple[str, str | None]]:
    rows = db.execute(
        "SELECT message_type, status, error_message FROM message_logs WHERE user_id = %s"
        " AND status <> 'SENT'",
        (user_id,),
    ).fetchall()
    return {r["message_type"]: (r["status"], r["error_message"]) for r in rows}


def test_opting_out_of_one_occasion_cancels_its_greeting_and_keeps_the_other(client, db):
    user = create_user(client)

    response = client.post(f"/users/{user['id']}/unsubscribe", json={"occasions": ["anniversary"]})

    assert response.status_code == 200
    assert response.get_json()["unsubscribed"] == ["ANNIVERSARY"]
    assert greetings(db, user["id"]) == {
        "ANNIVERSARY": ("CANCELLED", "unsubscribed"),
        "BIRTHDAY": ("SCHEDULED", None),
    }


@pytest.mark.parametrize("body", [None, {}])
def test_no_body_or_an_empty_one_opts_out_of_every_occasion(client, db, body):
    user = create_user(client)

    response = client.post(f"/users/{user['id']}/unsubscribe", json=body)

    assert response.get_json()["unsubscribed"] == ["ANNIVERSARY", "BIRTHDAY"]
    assert {status for status, _ in greetings(db, user["id"]).values()} == {"CANCELLED"}


def test_resubscribing_plans_the_occasion_again(client, db):
    user = create_user(client)
    client.post(f"/users/{user['id']}/unsubscribe")

    response = client.post(f"/users/{user['id']}/resubscribe", json={"occasions": ["BIRTHDAY"]})

    assert response.get_json()["unsubscribed"] == ["ANNIVERSARY"]
    assert greetings(db, user["id"])["BIRTHDAY"] == ("SCHEDULED", None)
    assert greetings(db, user["id"])["ANNIVERSARY"][0] == "CANCELLED"


def test_planning_never_plans_an_occasion_the_user_opted_out_of(client, db, pool):
    user = create_user(client)
    client.post(f"/users/{user['id']}/unsubscribe", json={"occasions": ["ANNIVERSARY"]})

    plan_all(pool, datetime.now(UTC) + timedelta(days=400), time(9))

    scheduled = db.execute(
        "SELECT DISTINCT message_type FROM message_logs"
        " WHERE user_id = %s AND status = 'SCHEDULED'",
        (user["id"],),
    ).fetchall()
    assert [r["message_type"] for r in scheduled] == ["BIRTHDAY"]


def test_a_put_or_patch_keeps_what_the_user_opted_out_of(client):
    user = create_user(client)
    client.post(f"/users/{user['id']}/unsubscribe", json={"occasions": ["ANNIVERSARY"]})
    body = {k: user[k] for k in ("first_name", "last_name", "email", "timezone")}

    replaced = client.put(f"/users/{user['id']}", json={**body, "birthday_date": "1990-12-10"})
    patched = client.patch(f"/users/{user['id']}", json={"last_name": "King"})

    assert replaced.get_json()["unsubscribed"] == ["ANNIVERSARY"]
    assert patched.get_json()["unsubscribed"] == ["ANNIVERSARY"]


def test_a_queued_greeting_of_an_occasion_opted_out_of_is_cancelled_when_taken(client, db, pool):
    # Given a greeting a worker has not taken yet, and its user opting out meanwhile
    user = create_user(client)
    db.execute(
        "UPDATE message_logs SET status = 'QUEUED', locked_until = now() + interval '5 min'"
        " WHERE user_id = %s AND message_type = 'BIRTHDAY'",
        (user["id"],),
    )
    db.execute("UPDATE users SET unsubscribed = '{BIRTHDAY}' WHERE id = %s", (user["id"],))
    row = db.execute(
        "SELECT id FROM message_logs WHERE user_id = %s AND message_type = 'BIRTHDAY'",
        (user["id"],),
    ).fetchone()
    # When a worker takes it
    [taken] = delivery.begin_sends(
        pool,
        [(row["id"], None)],
        None,
        lease=timedelta(minutes=2),
        max_lateness=timedelta(hours=48),
        send_time=time(9),
    )
    # Then it is cancelled, not sent
    assert taken["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"occasions": ["WEDDING"]}, "occasions"),
        ({"occasions": []}, "occasions"),
        ({"occasions": "BIRTHDAY"}, "occasions"),
        ({"occasions": [None]}, "occasions"),
        ({"everything": True}, "everything"),
    ],
)
def test_a_bad_list_of_occasions_is_422_naming_it(client, db, body, field):
    user = create_user(client)

    response = client.post(f"/users/{user['id']}/unsubscribe", json=body)

    assert_field_error(response, field)
    assert {s for s, _ in greetings(db, user["id"]).values()} == {"SCHEDULED"}


@pytest.mark.parametrize("action", ["unsubscribe", "resubscribe"])
def test_an_unknown_user_is_404(client, action):
    response = client.post(f"/users/00000000-0000-4000-8000-000000000000/{action}")

    assert_error(response, 404)
