"""POST /users/import: CSV and NDJSON from a system of record, applied set-based."""

from __future__ import annotations

import json

import pytest

from api.resources import resources_of
from app import create_app
from tests.factories import assert_error, create_user

HEADER = "external_id,first_name,last_name,email,timezone,birthday_date,anniversary_date\n"
ADA = "HR-1,Ada,Lovelace,ada@example.com,Europe/London,1990-12-10,\n"
GRACE = "HR-2,Grace,Hopper,grace@example.com,America/New_York,1906-12-09,1930-06-15\n"


def post_csv(client, body: str, query: str = ""):
    return client.post(f"/users/import{query}", data=body, content_type="text/csv")


def users(db) -> dict[str, dict]:
    rows = db.execute("SELECT * FROM users WHERE deleted_at IS NULL").fetchall()
    return {r["external_id"]: r for r in rows}


def greetings(db) -> list[tuple]:
    rows = db.execute(
        "SELECT u.external_id, m.message_type, m.status, m.message_content, m.id"
        " FROM message_logs m JOIN users u ON u.id = m.user_id ORDER BY m.id"
    ).fetchall()
    return [tuple(r.values()) for r in rows]


def counts(response) -> tuple:
    body = response.get_json()
    return tuple(body[k] for k in ("created", "updated", "unchanged", "deleted", "error_count"))


def test_an_import_creates_users_and_plans_their_greetings(client, db):
    response = post_csv(client, HEADER + ADA + GRACE)

    assert response.status_code == 200
    assert counts(response) == (2, 0, 0, 0, 0)
    assert set(users(db)) == {"HR-1", "HR-2"}
    assert sorted((e, t) for e, t, *_ in greetings(db)) == [
        ("HR-1", "BIRTHDAY"),
        ("HR-2", "ANNIVERSARY"),
        ("HR-2", "BIRTHDAY"),
    ]


def test_the_same_file_again_changes_nothing(client, db):
    post_csv(client, HEADER + ADA + GRACE)
    before_users, before_greetings = users(db), greetings(db)

    response = post_csv(client, HEADER + ADA + GRACE)

    assert counts(response) == (0, 0, 2, 0, 0)
    assert {k: v["updated_at"] for k, v in users(db).items()} == {
        k: v["updated_at"] for k, v in before_users.items()
    }
    assert greetings(db) == before_greetings


def test_a_changed_row_updates_its_user_and_replans_as_a_patch_does(client, db):
    post_csv(client, HEADER + ADA + GRACE)

    response = post_csv(client, HEADER + ADA.replace("Lovelace", "King") + GRACE)

    assert counts(response) == (0, 1, 1, 0, 0)
    assert users(db)["HR-1"]["last_name"] == "King"
    [ada] = [g for g in greetings(db) if g[0] == "HR-1"]
    assert ada[2] == "SCHEDULED" and "Ada King" in ada[3]


def test_delete_missing_deletes_who_the_file_leaves_out_and_cancels_their_greetings(client, db):
    kept = create_user(client)  # no external_id: not the system of record's
    post_csv(client, HEADER + ADA + GRACE)

    response = post_csv(client, HEADER + ADA, "?delete_missing=true")

    assert counts(response) == (0, 0, 1, 1, 0)
    assert set(users(db)) == {"HR-1", None}
    assert {s for e, _, s, *_ in greetings(db) if e == "HR-2"} == {"CANCELLED"}
    assert client.get(f"/users/{kept['id']}").status_code == 200


def test_a_dry_run_counts_and_writes_nothing(client, db):
    response = post_csv(client, HEADER + ADA + GRACE, "?dry_run=true&delete_missing=true")

    assert response.get_json()["dry_run"] is True
    assert counts(response) == (2, 0, 0, 0, 0)
    assert users(db) == {} and greetings(db) == []


def test_invalid_rows_are_reported_and_the_valid_ones_applied(client, db):
    bad = (
        "HR-3,Bad,Zone,zone@example.com,Mars/Base,1990-01-01,\n"
        "HR-4,Bad,Date,date@example.com,UTC,1990-02-30,\n"
        "HR-5,,Name,name@example.com,UTC,1990-01-01,\n"
        "HR-6,No,Dates,dates@example.com,UTC,,\n"
        "HR-7,Bad,Email,not-an-email,UTC,1990-01-01,\n"
        "HR-8,Same,Email,ada@example.com,UTC,1990-01-01,\n"
    )

    response = post_csv(client, HEADER + ADA + bad)

    body = response.get_json()
    assert counts(response)[:2] == (1, 0) and body["error_count"] == 6
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (2, "timezone"),
        (3, "birthday_date"),
        (4, "first_name"),
        (5, "birthday_date"),
        (6, "email"),
        (7, "email"),
    ]
    assert set(users(db)) == {"HR-1"}


def test_a_row_whose_external_id_no_user_has_links_the_user_with_its_email(client, db):
    user = create_user(client, email="ada@example.com")

    response = post_csv(client, HEADER + ADA)

    assert counts(response) == (0, 1, 0, 0, 0)
    assert str(users(db)["HR-1"]["id"]) == user["id"]


def test_ndjson_is_read_line_by_line(client, db):
    lines = [
        {
            "external_id": "HR-1",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "timezone": "UTC",
            "birthday_date": "1990-12-10",
        },
        {
            "external_id": "HR-2",
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": "grace@example.com",
            "timezone": "UTC",
            "anniversary_date": "1930-06-15",
        },
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"

    response = client.post("/users/import", data=body, content_type="application/x-ndjson")

    assert counts(response) == (2, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        ("external_id,nick\nx,y\n", "text/csv", "nick"),
        ("first_name,first_name\nA,B\n", "text/csv", "first_name"),
        ("", "text/csv", "header"),
        (HEADER + "HR-1,Ada\n", "text/csv", "row"),
        (HEADER + ADA + ADA.replace("ada@", "ada2@"), "text/csv", "external_id"),
        (
            '{"external_id": "HR-1", "first_name": "Ada"}\n{"external_id": "HR-2", "fir',
            "application/x-ndjson",
            "row",
        ),
        ('["not", "an", "object"]\n', "application/x-ndjson", "row"),
        ('{"nickname": "Ada"}\n', "application/x-ndjson", "nickname"),
        ('{"first_name": {"a": 1}}\n', "application/x-ndjson", "first_name"),
    ],
)
def test_a_body_that_is_not_an_import_is_422_naming_row_and_field_and_writes_nothing(
    client, db, body, content_type, field
):
    response = client.post("/users/import", data=body, content_type=content_type)

    error = assert_error(response, 422)
    assert field in error["errors"]["body"]
    assert error["message"].startswith("row ")
    assert users(db) == {}


def test_a_body_that_is_not_utf8_is_422_and_writes_nothing(client, db):
    response = client.post(
        "/users/import", data=(HEADER + ADA).encode() + b"\xff\n", content_type="text/csv"
    )

    assert_error(response, 422)
    assert users(db) == {}


def test_another_content_type_is_415_naming_it(client):
    response = client.post("/users/import", data="{}", content_type="application/json")

    assert_error(response, 415)
    assert "Content-Type" in response.get_json()["errors"]["headers"]


def test_limits_of_rows_and_bytes_are_the_imports_own(db_url, db):
    app = create_app({"DATABASE_URL": db_url, "IMPORT_MAX_ROWS": "1", "IMPORT_MAX_BYTES": "2048"})
    resources_of(app).pool.open(wait=True, timeout=10)
    try:
        client = app.test_client()
        too_many = post_csv(client, HEADER + ADA + GRACE)
        too_big = post_csv(client, HEADER + ADA + "x" * 3000)
        # and the 64 KiB limit of other requests does not apply to an import
        app_default = create_app({"DATABASE_URL": db_url})
    finally:
        resources_of(app).pool.close()

    assert too_many.status_code == 422 and "body" in too_many.get_json()["errors"]["body"]
    assert too_big.status_code == 413
    assert users(db) == {}
    assert resources_of(app_default).settings.import_max_bytes > 64 * 1024
    resources_of(app_default).pool.close()
