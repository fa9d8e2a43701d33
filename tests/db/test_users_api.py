"""The /users HTTP API through the Flask test client, on the real PostgreSQL."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

USER_FIELDS = {
    "id",
    "first_name",
    "last_name",
    "email",
    "timezone",
    "birthday_date",
    "anniversary_date",
    "location_city",
    "location_country",
    "created_at",
    "updated_at",
}
OMIT = object()
_sequence = itertools.count(1)


# --- helpers -------------------------------------------------------------------------------


def user_payload(**overrides: Any) -> dict[str, Any]:
    """A valid POST body with a unique email; an override of OMIT drops the field."""
    number = next(_sequence)
    payload: dict[str, Any] = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": f"user{number}-{uuid.uuid4().hex[:8]}@example.com",
        "timezone": "Europe/London",
        "birthday_date": "1990-12-10",
        "anniversary_date": "2015-06-20",
        "location_city": "London",
        "location_country": "United Kingdom",
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not OMIT}


def create_user(client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/users", json=user_payload(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def delete_user(client, user_id: str) -> None:
    response = client.delete(f"/users/{user_id}")
    assert response.status_code == 204


def count_users(db_url: str) -> int:
    """Every row of users, live or deleted."""
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM users").fetchone()[0]


def stored_user(db_url: str, user_id: str) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return row


def assert_error(response, code: int) -> dict[str, Any]:
    """The JSON error shape: integer code, string status and string message."""
    assert response.status_code == code
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert body["code"] == code
    assert isinstance(body["code"], int)
    assert body["status"] == HTTPStatus(code).phrase
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def assert_field_error(response, field: str, location: str = "json") -> list[str]:
    """A 422 whose errors name `field` (under `location`); returns its messages."""
    body = assert_error(response, 422)
    messages = body["errors"][location][field]
    assert messages
    return messages


def assert_rejected(client, db_url: str, payload: dict[str, Any], field: str) -> list[str]:
    """POST is refused with a 422 naming `field`, and nothing is stored."""
    messages = assert_field_error(client.post("/users", json=payload), field)
    assert count_users(db_url) == 0
    return messages


def utc_today_plus(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def pagination(response) -> dict[str, Any]:
    return json.loads(response.headers["X-Pagination"])


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


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


# --- GET /users ----------------------------------------------------------------------------


def test_listing_users_returns_them_with_a_pagination_header(client):
    created = [create_user(client) for _ in range(3)]

    response = client.get("/users")

    assert response.status_code == 200
    assert response.get_json() == created
    assert pagination(response) == {
        "total": 3,
        "total_pages": 1,
        "first_page": 1,
        "last_page": 1,
        "page": 1,
    }


def test_listing_no_users_returns_an_empty_list_and_a_zero_total(client):
    response = client.get("/users")

    assert response.status_code == 200
    assert response.get_json() == []
    assert pagination(response)["total"] == 0


def test_the_first_page_has_a_next_page_but_no_previous_page(client):
    for _ in range(5):
        create_user(client)

    response = client.get("/users?page=1&page_size=2")

    assert response.status_code == 200
    assert len(response.get_json()) == 2
    assert pagination(response) == {
        "total": 5,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 1,
        "next_page": 2,
    }


def test_a_middle_page_has_a_previous_and_a_next_page(client):
    for _ in range(5):
        create_user(client)

    response = client.get("/users?page=2&page_size=2")

    assert response.status_code == 200
    assert len(response.get_json()) == 2
    header = pagination(response)
    assert header["page"] == 2
    assert header["previous_page"] == 1
    assert header["next_page"] == 3


def test_the_last_page_has_a_previous_page_but_no_next_page(client):
    for _ in range(5):
        create_user(client)

    response = client.get("/users?page=3&page_size=2")

    assert response.status_code == 200
    assert len(response.get_json()) == 1
    header = pagination(response)
    assert header["page"] == 3
    assert header["previous_page"] == 2
    assert "next_page" not in header


def test_pages_list_users_in_creation_order_with_none_repeated_or_missed(client):
    created_ids = [create_user(client)["id"] for _ in range(7)]

    seen = []
    for page in (1, 2, 3):
        response = client.get(f"/users?page={page}&page_size=3")
        assert response.status_code == 200
        seen.extend(user["id"] for user in response.get_json())

    assert seen == created_ids


def test_a_page_after_the_last_is_an_empty_list(client):
    create_user(client)

    response = client.get("/users?page=5")

    assert response.status_code == 200
    assert response.get_json() == []
    assert pagination(response)["total"] == 1
    assert "page" not in pagination(response)


def test_a_huge_page_number_is_not_a_server_error(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    create_user(client)

    response = client.get("/users?page=99999999999999999999")

    assert response.status_code in {200, 422}


def test_a_page_size_of_100_is_accepted(client):
    create_user(client)

    response = client.get("/users?page_size=100")

    assert response.status_code == 200
    assert len(response.get_json()) == 1


def test_a_page_size_above_100_is_422(client):
    assert_field_error(client.get("/users?page_size=101"), "page_size", location="query")


def test_page_0_is_422(client):
    assert_field_error(client.get("/users?page=0"), "page", location="query")


def test_search_finds_a_last_name_case_insensitively_by_substring(client):
    ada = create_user(client, first_name="Ada", last_name="Lovelace")
    create_user(client, first_name="Alan", last_name="Turing")

    response = client.get("/users?q=LOVEL")

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [ada["id"]]
    assert pagination(response)["total"] == 1


def test_search_finds_a_first_name(client):
    create_user(client, first_name="Ada", last_name="Lovelace")
    alan = create_user(client, first_name="Alan", last_name="Turing")

    response = client.get("/users?q=aLa")

    assert [user["id"] for user in response.get_json()] == [alan["id"]]


def test_search_finds_an_email(client):
    create_user(client)
    found = create_user(client, email="countess.of.lovelace@example.org")

    response = client.get("/users?q=OF.LOVE")

    assert [user["id"] for user in response.get_json()] == [found["id"]]


def test_search_with_no_match_returns_an_empty_list(client):
    create_user(client)

    response = client.get("/users?q=zzzz")

    assert response.status_code == 200
    assert response.get_json() == []
    assert pagination(response)["total"] == 0


def test_a_search_shorter_than_3_characters_is_422_naming_q(client):
    assert_field_error(client.get("/users?q=ad"), "q", location="query")


def test_a_search_of_3_characters_is_accepted(client):
    ada = create_user(client, first_name="Ada", last_name="Lovelace")

    response = client.get("/users?q=ada")

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [ada["id"]]


def test_percent_and_underscore_in_a_search_are_literal(client):
    real = create_user(client, first_name="100%_Real", last_name="Person")
    create_user(client, first_name="1000", last_name="Robert")

    response = client.get("/users", query_string={"q": "0%_r"})

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [real["id"]]


def test_an_underscore_in_a_search_does_not_match_any_character(client):
    create_user(client, first_name="Adam", last_name="Smith", email="adam@example.com")

    response = client.get("/users", query_string={"q": "ad_m"})

    assert response.status_code == 200
    assert response.get_json() == []


def test_a_backslash_in_a_search_is_literal(client):
    slash = create_user(client, first_name="Back\\slash", last_name="Person")
    create_user(client, first_name="Backslash", last_name="Person")

    response = client.get("/users", query_string={"q": "k\\s"})

    assert [user["id"] for user in response.get_json()] == [slash["id"]]


def test_a_search_with_a_nul_character_is_422_naming_q(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    create_user(client)

    response = client.get("/users", query_string={"q": "ab\x00c"})

    assert_field_error(response, "q", location="query")


def test_the_timezone_filter_lists_only_users_in_that_zone(client):
    kathmandu = create_user(client, timezone="Asia/Kathmandu")
    create_user(client, timezone="Europe/London")

    response = client.get("/users?timezone=Asia/Kathmandu")

    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()] == [kathmandu["id"]]
    assert pagination(response)["total"] == 1


def test_an_unknown_timezone_filter_is_422(client):
    assert_field_error(client.get("/users?timezone=Mars/Olympus"), "timezone", location="query")


def test_deleted_users_never_appear_in_the_list(client):
    kept = create_user(client, first_name="Ada", last_name="Lovelace", timezone="Asia/Kathmandu")
    gone = create_user(client, first_name="Ada", last_name="Lovelace", timezone="Asia/Kathmandu")
    delete_user(client, gone["id"])

    for query in ("", "?q=lovelace", "?timezone=Asia/Kathmandu"):
        response = client.get(f"/users{query}")
        assert [user["id"] for user in response.get_json()] == [kept["id"]]
        assert pagination(response)["total"] == 1


# --- validation: names ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_is_required(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: OMIT}), field)


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_is_stored_trimmed(client, db_url, field):
    body = create_user(client, **{field: " Ada "})

    assert body[field] == "Ada"
    assert stored_user(db_url, body["id"])[field] == "Ada"


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_of_only_spaces_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "   "}), field)


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_an_empty_name_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: ""}), field)


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_of_100_characters_is_accepted(client, field):
    assert create_user(client, **{field: "a" * 100})[field] == "a" * 100


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_of_101_characters_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "a" * 101}), field)


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_with_a_nul_character_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "Ada\u0000"}), field)


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_with_a_newline_inside_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "A\nda"}), field)


def test_a_name_that_is_not_a_string_is_rejected(client, db_url):
    assert_rejected(client, db_url, user_payload(first_name=123), "first_name")


# --- validation: email ---------------------------------------------------------------------


def test_email_is_required(client, db_url):
    assert_rejected(client, db_url, user_payload(email=OMIT), "email")


@pytest.mark.parametrize("email", ["not-an-email", "ada@", "@example.com", "ada lovelace@x.com"])
def test_an_invalid_email_is_rejected(client, db_url, email):
    assert_rejected(client, db_url, user_payload(email=email), "email")


def test_email_is_stored_trimmed_and_lower_cased(client, db_url):
    body = create_user(client, email="  Ada.Lovelace@Example.COM ")

    assert body["email"] == "ada.lovelace@example.com"
    assert stored_user(db_url, body["id"])["email"] == "ada.lovelace@example.com"


# --- validation: timezone ------------------------------------------------------------------


def test_timezone_is_required(client, db_url):
    assert_rejected(client, db_url, user_payload(timezone=OMIT), "timezone")


@pytest.mark.parametrize(
    "zone", ["America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati", "UTC"]
)
def test_a_real_iana_timezone_is_accepted(client, zone):
    assert create_user(client, timezone=zone)["timezone"] == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Not/AZone", ""])
def test_an_unknown_timezone_is_rejected_with_an_example(client, db_url, zone):
    messages = assert_rejected(client, db_url, user_payload(timezone=zone), "timezone")

    assert "America/New_York" in " ".join(messages)


# --- validation: dates ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["birthday_date", "anniversary_date"])
def test_a_date_that_is_not_iso_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "10/12/1990"}), field)


@pytest.mark.parametrize("field", ["birthday_date", "anniversary_date"])
def test_a_date_that_is_not_on_the_calendar_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "1990-02-30"}), field)


@pytest.mark.parametrize("field", ["birthday_date", "anniversary_date"])
def test_a_date_in_the_future_is_rejected(client, db_url, field):
    payload = user_payload(timezone="Pacific/Kiritimati", **{field: utc_today_plus(2)})

    assert_rejected(client, db_url, payload, field)


@pytest.mark.parametrize("field", ["birthday_date", "anniversary_date"])
def test_a_date_before_1900_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "1899-12-31"}), field)


@pytest.mark.parametrize("field", ["birthday_date", "anniversary_date"])
def test_a_date_of_1900_01_01_is_accepted(client, field):
    assert create_user(client, **{field: "1900-01-01"})[field] == "1900-01-01"


def test_a_user_with_neither_date_is_rejected(client, db_url):
    payload = user_payload(birthday_date=OMIT, anniversary_date=OMIT)

    assert_rejected(client, db_url, payload, "birthday_date")


def test_a_user_with_both_dates_null_is_rejected(client, db_url):
    payload = user_payload(birthday_date=None, anniversary_date=None)

    assert_rejected(client, db_url, payload, "birthday_date")


def test_an_anniversary_alone_is_enough(client):
    body = create_user(client, birthday_date=OMIT, anniversary_date="2015-06-20")

    assert body["birthday_date"] is None
    assert body["anniversary_date"] == "2015-06-20"


def test_a_birthday_on_29_february_is_accepted(client):
    assert create_user(client, birthday_date="2000-02-29")["birthday_date"] == "2000-02-29"


def test_a_birthday_of_kiritimatis_local_today_is_accepted_in_kiritimati(client):
    kiritimati_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date().isoformat()

    body = create_user(client, timezone="Pacific/Kiritimati", birthday_date=kiritimati_today)

    assert body["birthday_date"] == kiritimati_today


def test_a_birthday_of_kiritimatis_local_today_is_in_the_future_in_pago_pago(client, db_url):
    # Kiritimati (UTC+14) is always at least one calendar day ahead of Pago Pago (UTC-11).
    kiritimati_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date().isoformat()
    payload = user_payload(timezone="Pacific/Pago_Pago", birthday_date=kiritimati_today)

    assert_rejected(client, db_url, payload, "birthday_date")


# --- validation: location and unknown fields -----------------------------------------------


@pytest.mark.parametrize("field", ["location_city", "location_country"])
def test_a_location_of_100_characters_is_accepted(client, field):
    assert create_user(client, **{field: "x" * 100})[field] == "x" * 100


@pytest.mark.parametrize("field", ["location_city", "location_country"])
def test_a_location_longer_than_100_characters_is_rejected(client, db_url, field):
    assert_rejected(client, db_url, user_payload(**{field: "x" * 101}), field)


@pytest.mark.parametrize("field", ["location_city", "location_country"])
def test_a_location_may_be_null(client, field):
    assert create_user(client, **{field: None})[field] is None


def test_an_unknown_field_is_rejected_by_name(client, db_url):
    assert_rejected(client, db_url, user_payload(nickname="Countess"), "nickname")


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


@pytest.mark.parametrize("invisible", ["\u200b", "\u2028", "\u00ad"])
def test_names_with_invisible_characters_are_rejected(client, invisible):
    response = client.post("/users", json=user_payload(first_name=f"A{invisible}da"))

    assert response.status_code == 422
    assert "first_name" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "posix/Europe/London"])
def test_zone_file_aliases_that_are_not_zones_are_rejected_with_an_example(client, zone):
    response = client.post("/users", json=user_payload(timezone=zone))

    assert response.status_code == 422
    assert "America/New_York" in response.get_json()["errors"]["json"]["timezone"][0]


def test_search_matches_a_full_name_across_first_and_last_name(client):
    create_user(client, first_name="Bob", last_name="Smith")
    create_user(client, first_name="Bobby", last_name="Jones")

    found = client.get("/users?q=bob smi").get_json()

    assert [(u["first_name"], u["last_name"]) for u in found] == [("Bob", "Smith")]
