"""GET /users at speed keeps its shape: the list's users are built without marshmallow
(api/user_json.py) yet are exactly what UserSchema dumps, and a search answers the same
whichever way it finds its matches (trigram index first, creation order, every match)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from api.schemas import UserSchema
from api.user_json import user_json, users_json
from repositories import users as users_repository
from tests.factories import OMIT, create_user, delete_user

BASE_ROW = {
    "id": uuid.UUID("6f1c1b8e-3a57-4d6a-9d0e-0f7b0b9f5a11"),
    "external_id": "HR-00042",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "timezone": "Europe/London",
    "birthday_date": date(1990, 12, 10),
    "anniversary_date": date(2015, 6, 20),
    "location_city": "London",
    "location_country": "United Kingdom",
    "locale": "en-GB",
    "unsubscribed": ["ANNIVERSARY"],
    "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    "updated_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=45))),
}
OPTIONAL = (
    "external_id",
    "birthday_date",
    "anniversary_date",
    "location_city",
    "location_country",
    "locale",
)


def _variants() -> list[dict]:
    rows = [BASE_ROW, {**BASE_ROW, "unsubscribed": []}]
    rows += [{**BASE_ROW, field: None} for field in OPTIONAL]
    rows.append({**BASE_ROW, **dict.fromkeys(OPTIONAL[:-1], None), "anniversary_date": None})
    rows.append({**BASE_ROW, "unsubscribed": ["BIRTHDAY", "ANNIVERSARY"], "first_name": "Zoë"})
    rows.append({key: value for key, value in BASE_ROW.items() if key != "external_id"})
    return rows


@pytest.mark.parametrize("row", _variants())
def test_a_row_becomes_exactly_what_the_schema_dumps(row):
    assert user_json(row) == UserSchema().dump(row)


def test_rows_become_exactly_what_the_list_schema_dumps():
    rows = _variants()

    assert users_json(rows) == UserSchema(many=True).dump(rows)


def test_listed_users_are_what_the_schema_dumps_from_the_stored_rows(client, db):
    create_user(client)
    create_user(client, external_id="HR-1", locale="pt-BR", anniversary_date=OMIT)
    create_user(client, location_city=None, location_country=None, birthday_date=OMIT)
    unsubscribed = create_user(client)
    client.post(f"/users/{unsubscribed['id']}/unsubscribe", json={"occasions": ["anniversary"]})
    gone = create_user(client)
    delete_user(client, gone["id"])
    columns = ", ".join(users_repository.COLUMNS)
    rows = db.execute(
        f"SELECT {columns} FROM users WHERE deleted_at IS NULL ORDER BY created_at, id"
    ).fetchall()

    listed = client.get("/users").get_json()

    assert listed == UserSchema(many=True).dump(rows)
    assert len(listed) == 4
    assert listed[3]["unsubscribed"] == ["ANNIVERSARY"]


def test_each_listed_user_is_what_get_by_id_answers(client):
    created = [create_user(client), create_user(client, external_id="X-1", locale="fr")]

    listed = client.get("/users").get_json()

    assert listed == [client.get(f"/users/{user['id']}").get_json() for user in created]


def test_the_docs_still_describe_the_list_with_the_user_schema(client):
    spec = client.get("/openapi.json").get_json()

    ok = spec["paths"]["/users"]["get"]["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema == {"type": "array", "items": {"$ref": "#/components/schemas/User"}}
    assert "X-Pagination" in ok["headers"]


@pytest.mark.parametrize(("rare_up_to", "window"), [(1_000, 5_000), (0, 5_000), (0, 2), (2, 2)])
def test_a_search_answers_the_same_whichever_way_it_finds_its_matches(
    client, monkeypatch, rare_up_to, window
):
    monkeypatch.setattr(users_repository, "SEARCH_RARE_UP_TO", rare_up_to)
    monkeypatch.setattr(users_repository, "SEARCH_WINDOW", window)
    for _ in range(3):
        create_user(client, last_name="Hopper")
    wanted = [create_user(client, last_name="Lovelace")["id"] for _ in range(5)]
    delete_user(client, wanted.pop(1))
    create_user(client, last_name="Hopper")

    first = client.get("/users?q=lovel&page_size=2")
    cursor = first.headers["X-Next-Cursor"]
    second = client.get(f"/users?q=lovel&page_size=2&after={cursor}")
    numbered = client.get("/users?q=lovel&page_size=2&page=2")

    assert [u["id"] for u in first.get_json() + second.get_json()] == wanted
    assert "X-Next-Cursor" not in second.headers
    assert [u["id"] for u in numbered.get_json()] == wanted[2:]
    assert client.get("/users?q=zzqx").get_json() == []
