"""/unsubscribe/<token>: the signed one-click link (RFC 8058), with and without tokens."""

from __future__ import annotations

import pytest

from api.resources import resources_of
from app import create_app
from config import Settings
from recipients.links import link_for, token_for
from tests.factories import create_user

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def token(user_id: str, occasion: str = "ANNIVERSARY", secret: str | None = None) -> str:
    secret = secret or Settings.from_env().unsubscribe_signing_secret
    return token_for(secret, user_id, occasion)


def opted_out(client, user_id: str) -> list[str]:
    return client.get(f"/users/{user_id}").get_json()["unsubscribed"]


def pending(db, user_id: str) -> set[tuple[str, str]]:
    rows = db.execute(
        "SELECT message_type, status FROM message_logs WHERE user_id = %s", (user_id,)
    ).fetchall()
    return {(r["message_type"], r["status"]) for r in rows}


def test_the_link_shows_a_confirmation_page_and_changes_nothing(client, db):
    user = create_user(client)

    response = client.get(f"/unsubscribe/{token(user['id'])}")

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert 'name="List-Unsubscribe" value="One-Click"' in page and "<script" not in page
    assert user["email"] in page
    assert opted_out(client, user["id"]) == []


def test_one_click_post_opts_out_of_that_occasion_at_once(client, db):
    user = create_user(client)

    response = client.post(f"/unsubscribe/{token(user['id'])}", data=ONE_CLICK)

    assert response.status_code == 200
    assert opted_out(client, user["id"]) == ["ANNIVERSARY"]
    assert pending(db, user["id"]) == {("ANNIVERSARY", "CANCELLED"), ("BIRTHDAY", "SCHEDULED")}
    # Once more: the same answer, nothing else changes
    assert client.post(f"/unsubscribe/{token(user['id'])}", data=ONE_CLICK).status_code == 200
    assert opted_out(client, user["id"]) == ["ANNIVERSARY"]


def test_a_post_without_the_one_click_body_changes_nothing(client):
    user = create_user(client)

    response = client.post(f"/unsubscribe/{token(user['id'])}", data={"List-Unsubscribe": "x"})

    assert response.status_code == 400
    assert opted_out(client, user["id"]) == []


def _tampered(value: str) -> str:
    """One character of the signed payload changed (the signature's last character may
    carry only padding bits, so it is left alone)."""
    changed = "A" if value[3] != "A" else "B"
    return value[:3] + changed + value[4:]


@pytest.mark.parametrize(
    "make",
    [
        lambda user_id: _tampered(token(user_id)),
        lambda user_id: token(user_id, secret="another-secret-of-someone-else"),
        lambda user_id: token(user_id, occasion="WEDDING"),
        lambda user_id: token("not-a-uuid"),
        lambda user_id: "x" * 5000,
        lambda user_id: "..%252f..%00etc",
        lambda user_id: "ünïcode.ßig",
        lambda user_id: "W10.bad",
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_token_this_service_did_not_sign_is_404_and_changes_nothing(client, make, method):
    user = create_user(client)

    response = getattr(client, method)(f"/unsubscribe/{make(user['id'])}", data=ONE_CLICK)

    assert response.status_code == 404
    assert opted_out(client, user["id"]) == []


def test_a_deleted_users_link_is_404(client):
    user = create_user(client)
    client.delete(f"/users/{user['id']}")

    assert client.post(f"/unsubscribe/{token(user['id'])}", data=ONE_CLICK).status_code == 404


def test_the_link_needs_no_bearer_token_when_tokens_are_set(db_url):
    secret = "a-secret-for-this-test-only-1234"
    tokens = {
        "API_TOKENS": "w" * 24,
        "PUBLIC_BASE_URL": "https://greetings.example.com",
        "UNSUBSCRIBE_SECRET": secret,
    }
    app = create_app({"DATABASE_URL": db_url, **tokens})
    resources_of(app).pool.open(wait=True, timeout=10)
    try:
        client = app.test_client()
        headers = {"Authorization": "Bearer " + "w" * 24}
        user = create_user_with(client, headers)
        url = link_for("https://greetings.example.com", secret, user["id"], "BIRTHDAY")
        path = url.removeprefix("https://greetings.example.com")

        assert client.get(path).status_code == 200
        assert client.post(path, data=ONE_CLICK).status_code == 200
        assert client.get(f"/users/{user['id']}", headers=headers).get_json()["unsubscribed"] == [
            "BIRTHDAY"
        ]
    finally:
        resources_of(app).pool.close()


def create_user_with(client, headers: dict) -> dict:
    from tests.factories import user_payload

    response = client.post("/users", json=user_payload(), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()
