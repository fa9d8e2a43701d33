"""A user's external_id: the id of the system of record, unique among live users."""

from __future__ import annotations

import pytest

from tests.factories import assert_error, assert_field_error, create_user, delete_user


def test_a_user_keeps_its_external_id_and_is_found_by_it(client):
    ada = create_user(client, external_id=" HR-1 ")
    create_user(client, external_id="HR-2")
    create_user(client)

    found = client.get("/users?external_id=HR-1")

    assert ada["external_id"] == "HR-1"
    assert [u["id"] for u in found.get_json()] == [ada["id"]]
    assert client.get("/users?external_id=HR-3").get_json() == []


def test_two_live_users_cannot_share_an_external_id(client):
    create_user(client, external_id="HR-1")

    response = client.post(
        "/users", json={**_body(), "email": "other@example.com", "external_id": "HR-1"}
    )

    assert_error(response, 409)
    assert response.get_json()["errors"]["json"]["external_id"]


def test_a_deleted_users_external_id_can_be_used_again(client):
    old = create_user(client, external_id="HR-1")
    delete_user(client, old["id"])

    new = create_user(client, external_id="HR-1")

    assert new["external_id"] == "HR-1"


def test_a_patch_sets_and_clears_it(client):
    user = create_user(client)

    set_ = client.patch(f"/users/{user['id']}", json={"external_id": "CRM-7"}).get_json()
    cleared = client.patch(f"/users/{user['id']}", json={"external_id": None}).get_json()

    assert (set_["external_id"], cleared["external_id"]) == ("CRM-7", None)


@pytest.mark.parametrize("value", ["", "   ", "x" * 256, "a\tb", 42])
def test_a_bad_external_id_is_422_naming_it(client, value):
    response = client.post("/users", json={**_body(), "external_id": value})

    assert_field_error(response, "external_id")


def test_a_bad_external_id_filter_is_422(client):
    response = client.get("/users?external_id=" + "x" * 300)

    assert response.status_code == 422
    assert "external_id" in response.get_json()["errors"]["query"]


def _body() -> dict:
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "timezone": "UTC",
        "birthday_date": "1990-12-10",
    }
