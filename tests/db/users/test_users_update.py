"""The /users API, changing and deleting: PUT, PATCH and DELETE /users/<id>, through the
Flask test client on the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.factories import (
    OMIT,
    USER_FIELDS,
    assert_error,
    assert_field_error,
    count_users,
    create_user,
    delete_user,
    parse_time,
    stored_user,
    user_payload,
    utc_today_plus,
)

# --- PUT /users/<id> -----------------------------------------------------------------------


def test_put_replaces_every_writable_field(client):
    created = create_user(client)
    replacement = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "timezone": "Asia/Kathmandu",
        "birthday_date": "1985-03-04",
        "anniversary_date": "2010-07-08",
        "location_city": "Kathmandu",
        "location_country": "Nepal",
    }

    response = client.put(f"/users/{created['id']}", json=replacement)

    assert response.status_code == 200
    body = response.get_json()
    assert {key: body[key] for key in replacement} == replacement
    assert body["id"] == created["id"]
    assert body["created_at"] == created["created_at"]
    assert client.get(f"/users/{created['id']}").get_json() == body


def test_put_clears_optional_fields_left_out(client):
    created = create_user(client)
    replacement = user_payload(
        email=created["email"], anniversary_date=OMIT, location_city=OMIT, location_country=OMIT
    )

    response = client.put(f"/users/{created['id']}", json=replacement)

    assert response.status_code == 200
    body = response.get_json()
    assert body["anniversary_date"] is None
    assert body["location_city"] is None
    assert body["location_country"] is None
    assert client.get(f"/users/{created['id']}").get_json()["location_city"] is None


def test_put_requires_every_required_field(client):
    created = create_user(client)

    response = client.put(f"/users/{created['id']}", json={"first_name": "Ada"})

    body = assert_error(response, 422)
    assert {"last_name", "email", "timezone"} <= set(body["errors"]["json"])
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_put_with_the_email_of_another_live_user_is_a_conflict(client):
    create_user(client, email="taken@example.com")
    other = create_user(client)

    response = client.put(f"/users/{other['id']}", json=user_payload(email="Taken@Example.com"))

    assert_error(response, 409)
    assert client.get(f"/users/{other['id']}").get_json()["email"] == other["email"]


def test_put_of_a_deleted_user_is_404(client):
    created = create_user(client)
    delete_user(client, created["id"])

    assert_error(client.put(f"/users/{created['id']}", json=user_payload()), 404)


def test_put_of_an_unknown_user_is_404(client, db_url):
    assert_error(client.put(f"/users/{uuid.uuid4()}", json=user_payload()), 404)
    assert count_users(db_url) == 0


def test_put_moves_updated_at_forward(client):
    created = create_user(client)

    body = client.put(f"/users/{created['id']}", json=user_payload(first_name="Ada")).get_json()

    assert parse_time(body["updated_at"]) > parse_time(created["updated_at"])
    assert body["created_at"] == created["created_at"]


# --- PATCH /users/<id> ---------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"timezone": "Asia/Tokyo"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["timezone"] == "Asia/Tokyo"
    unchanged = USER_FIELDS - {"timezone", "updated_at"}
    assert {key: body[key] for key in unchanged} == {key: created[key] for key in unchanged}
    assert client.get(f"/users/{created['id']}").get_json() == body


def test_patch_trims_names_and_normalises_the_email(client):
    created = create_user(client)

    body = client.patch(
        f"/users/{created['id']}", json={"first_name": "  Ada ", "email": " ADA@Example.COM "}
    ).get_json()

    assert body["first_name"] == "Ada"
    assert body["email"] == "ada@example.com"


def test_patch_with_null_clears_location_city(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"location_city": None})

    assert response.status_code == 200
    assert response.get_json()["location_city"] is None
    assert response.get_json()["location_country"] == created["location_country"]
    assert client.get(f"/users/{created['id']}").get_json()["location_city"] is None


def test_patch_with_null_clears_one_date_while_the_other_remains(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"anniversary_date": None})

    assert response.status_code == 200
    assert response.get_json()["anniversary_date"] is None
    assert response.get_json()["birthday_date"] == created["birthday_date"]


def test_patch_may_clear_the_birthday_when_an_anniversary_remains(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"birthday_date": None})

    assert response.status_code == 200
    assert response.get_json()["birthday_date"] is None
    assert response.get_json()["anniversary_date"] == created["anniversary_date"]


def test_patch_leaving_neither_date_is_422_naming_birthday_date(client):
    created = create_user(client, anniversary_date=OMIT)

    response = client.patch(f"/users/{created['id']}", json={"birthday_date": None})

    assert_field_error(response, "birthday_date")
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_patch_clearing_both_dates_at_once_is_422_naming_birthday_date(client):
    created = create_user(client)

    response = client.patch(
        f"/users/{created['id']}", json={"birthday_date": None, "anniversary_date": None}
    )

    assert_field_error(response, "birthday_date")
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_patch_with_first_name_null_is_422(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"first_name": None})

    assert_field_error(response, "first_name")
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_patch_with_a_future_birthday_is_422(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"birthday_date": utc_today_plus(2)})

    assert_field_error(response, "birthday_date")
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_patch_to_a_zone_where_the_birthday_is_still_ahead_is_422(client):
    kiritimati_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date().isoformat()
    created = create_user(
        client,
        timezone="Pacific/Kiritimati",
        birthday_date=kiritimati_today,
        anniversary_date=OMIT,
    )

    response = client.patch(f"/users/{created['id']}", json={"timezone": "Pacific/Pago_Pago"})

    assert_field_error(response, "birthday_date")
    assert client.get(f"/users/{created['id']}").get_json() == created


def test_patch_with_an_unknown_field_is_422_naming_it(client):
    created = create_user(client)

    response = client.patch(f"/users/{created['id']}", json={"nickname": "Countess"})

    assert_field_error(response, "nickname")


def test_patch_with_the_email_of_another_live_user_is_a_conflict(client):
    create_user(client, email="taken@example.com")
    other = create_user(client)

    response = client.patch(f"/users/{other['id']}", json={"email": "TAKEN@example.com"})

    body = assert_error(response, 409)
    assert "email" in body["errors"]["json"]
    assert client.get(f"/users/{other['id']}").get_json() == other


def test_patch_with_the_email_of_a_deleted_user_is_accepted(client):
    gone = create_user(client, email="gone@example.com")
    delete_user(client, gone["id"])
    other = create_user(client)

    response = client.patch(f"/users/{other['id']}", json={"email": "gone@example.com"})

    assert response.status_code == 200
    assert response.get_json()["email"] == "gone@example.com"


def test_patch_of_a_deleted_user_is_404(client):
    created = create_user(client)
    delete_user(client, created["id"])

    assert_error(client.patch(f"/users/{created['id']}", json={"first_name": "Ada"}), 404)


def test_patch_of_an_unknown_user_is_404(client):
    assert_error(client.patch(f"/users/{uuid.uuid4()}", json={"first_name": "Ada"}), 404)


def test_patch_moves_updated_at_forward_and_keeps_created_at(client):
    created = create_user(client)

    body = client.patch(f"/users/{created['id']}", json={"first_name": "Ada"}).get_json()

    assert parse_time(body["updated_at"]) > parse_time(created["updated_at"])
    assert body["created_at"] == created["created_at"]


# --- DELETE /users/<id> --------------------------------------------------------------------


def test_delete_returns_204_with_an_empty_body(client):
    created = create_user(client)

    response = client.delete(f"/users/{created['id']}")

    assert response.status_code == 204
    assert response.data == b""


def test_deleting_a_user_twice_is_404(client):
    created = create_user(client)
    delete_user(client, created["id"])

    assert_error(client.delete(f"/users/{created['id']}"), 404)


def test_deleting_an_unknown_user_is_404(client):
    assert_error(client.delete(f"/users/{uuid.uuid4()}"), 404)


def test_deleting_keeps_the_row_but_marks_it_deleted(client, db_url):
    created = create_user(client)

    delete_user(client, created["id"])

    assert stored_user(db_url, created["id"])["deleted_at"] is not None


def test_the_email_of_a_deleted_user_can_be_used_by_a_new_user(client, db_url):
    first = create_user(client, email="ada@example.com")
    delete_user(client, first["id"])

    response = client.post("/users", json=user_payload(email="Ada@Example.com"))

    assert response.status_code == 201
    assert response.get_json()["id"] != first["id"]
    assert response.get_json()["email"] == "ada@example.com"
    assert count_users(db_url) == 2
