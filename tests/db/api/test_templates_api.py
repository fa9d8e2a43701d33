"""/templates: list, read, store, remove and preview greeting templates; users' locale."""

from __future__ import annotations

import pytest

from tests.factories import assert_error, assert_field_error, create_user

FRENCH = {"subject": "Joyeux anniversaire, {{ first_name }} !", "text": "Bonjour {{ full_name }}"}


def put(client, occasion: str, locale: str, body: dict):
    return client.put(f"/templates/{occasion}/{locale}", json=body)


def assert_names(response, code: int, field: str, location: str = "json") -> None:
    """An error `code` whose errors name `field` under `location`."""
    body = assert_error(response, code)
    assert body["errors"][location][field]


def stored_count(db) -> int:
    return db.execute("SELECT count(*) AS n FROM greeting_templates").fetchone()["n"]


def test_every_occasion_lists_its_built_in_default_when_nothing_is_stored(client):
    response = client.get("/templates")

    assert response.status_code == 200
    listed = {(t["occasion"], t["locale"]): t for t in response.get_json()}
    assert set(listed) == {("BIRTHDAY", "default"), ("ANNIVERSARY", "default")}
    birthday = listed[("BIRTHDAY", "default")]
    assert birthday["built_in"] is True
    assert birthday["text"] == "Hey, {{ first_name }} {{ last_name }} it's your birthday"


def test_a_template_is_created_then_replaced_under_its_one_spelling(client):
    created = put(client, "birthday", "PT-br", FRENCH)
    replaced = put(client, "BIRTHDAY", "pt-BR", {**FRENCH, "html": "<p>{{ first_name }}</p>"})

    assert created.status_code == 201, created.get_json()
    assert replaced.status_code == 200
    body = client.get("/templates/Birthday/pt-br").get_json()
    assert (body["occasion"], body["locale"], body["built_in"]) == ("BIRTHDAY", "pt-BR", False)
    assert body["html"] == "<p>{{ first_name }}</p>"
    assert [t["locale"] for t in client.get("/templates").get_json()].count("pt-BR") == 1


def test_a_stored_default_replaces_the_built_in_one_until_it_is_deleted(client):
    put(client, "anniversary", "default", FRENCH)

    assert client.get("/templates/anniversary/default").get_json()["built_in"] is False
    assert client.delete("/templates/anniversary/default").status_code == 204
    assert client.get("/templates/anniversary/default").get_json()["built_in"] is True
    assert_error(client.delete("/templates/anniversary/default"), 404)


def test_a_locale_with_nothing_stored_is_404_naming_the_locale(client):
    response = client.get("/templates/birthday/fr")

    assert_names(response, 404, "locale", location="path")


def test_an_unknown_occasion_is_404_naming_the_occasion(client, db):
    response = put(client, "wedding", "fr", FRENCH)

    assert_names(response, 404, "occasion", location="path")
    assert stored_count(db) == 0


@pytest.mark.parametrize("locale", ["f", "fr_FR", "english-language", "fr-" + "x" * 40, "ü"])
def test_a_locale_that_is_not_a_language_tag_is_422_naming_it(client, db, locale):
    response = put(client, "birthday", locale, FRENCH)

    assert_names(response, 422, "locale", location="path")
    assert stored_count(db) == 0


@pytest.mark.parametrize(
    ("body", "field", "line", "says"),
    [
        ({"text": "Hello\n{{ nickname }}"}, "text", 2, "unknown variable 'nickname'"),
        ({"subject": "{% if first_name %}"}, "subject", 1, ""),
        ({"text": "one\ntwo\n{{ first_name "}, "text", 3, ""),
        ({"text": "{% if false %}x{% endif %}"}, "text", None, "renders empty"),
        ({"subject": "   "}, "subject", None, "renders empty"),
        ({"html": "<p>\n{{ first_name.__class__ }}</p>"}, "html", 2, "__class__"),
        ({"text": "{{ ''.__class__.__mro__ }}"}, "text", 1, "__"),
        ({"text": "{{ first_name|attr('__class__') }}"}, "text", 1, "attr"),
        ({"text": "{{ first_name['__class__'] }}"}, "text", 1, "__class__"),
        ({"text": "{% for c in first_name %}{{ c }}{% endfor %}"}, "text", 1, "for"),
        ({"text": "{{ 'x' * 100 }}"}, "text", 1, "mul"),
        ({"text": "{{ 9 ** 9 }}"}, "text", 1, "pow"),
        ({"text": "{{ first_name|center(80) }}"}, "text", 1, "center"),
        ({"text": "{{ first_name.ljust(80) }}"}, "text", 1, "methods"),
        ({"text": "{{ range(5) }}"}, "text", 1, "unknown variable 'range'"),
        ({"text": "{{ years + 100000 }}"}, "text", 1, "numbers"),
        ({"text": "{{ 1 / 2 }}"}, "text", 1, "div"),
        ({"text": "\n{{ occasion_date.strftime(5) }}"}, "text", 2, "TypeError"),
        ({"text": "{% set x = 1 %}{{ x }}"}, "text", 1, "assign"),
    ],
)
def test_a_template_that_could_not_be_sent_as_written_is_422_naming_field_and_line(
    client, db, body, field, line, says
):
    response = put(client, "birthday", "fr", {**FRENCH, **body})

    assert_error(response, 422)
    [message] = assert_field_error(response, field)
    if line is not None:
        assert message.startswith(f"line {line}:"), message
    assert says in message
    assert stored_count(db) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "Hi"}, "subject"),
        ({"subject": "Hi"}, "text"),
        ({**FRENCH, "text": ""}, "text"),
        ({**FRENCH, "text": 5}, "text"),
        ({**FRENCH, "html": "a\x00b"}, "html"),
        ({**FRENCH, "text": "x" * 20_001}, "text"),
        ({**FRENCH, "footer": "x"}, "footer"),
    ],
)
def test_a_malformed_body_is_422_naming_the_field(client, db, body, field):
    response = put(client, "birthday", "fr", body)

    assert_error(response, 422)
    assert_field_error(response, field)
    assert stored_count(db) == 0


def test_a_template_may_branch_and_format_with_the_allowed_language(client):
    body = {
        "subject": "{{ first_name|upper }}",
        "text": "{% if years > 30 %}{{ years }} years{% else %}young{% endif %}"
        " on {{ occasion_date.strftime('%d %B') }}{{ ' in ' ~ city if city else '' }}",
    }

    assert put(client, "birthday", "en", body).status_code == 201


def test_a_preview_renders_the_template_for_a_users_next_occasion(client):
    user = create_user(client, first_name="Ada", birthday_date="1990-12-10", location_city="Paris")
    put(client, "birthday", "fr", {**FRENCH, "text": "{{ years }} ans à {{ city }}"})

    response = client.post("/templates/BIRTHDAY/fr/preview", json={"user_id": user["id"]})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    occasion_date = body["variables"]["occasion_date"]
    years = int(occasion_date[:4]) - 1990
    assert occasion_date[5:] == "12-10"
    assert body["subject"] == "Joyeux anniversaire, Ada !"
    assert body["text"] == f"{years} ans à Paris"
    assert body["html"] is None


def test_a_preview_of_the_built_in_default_needs_nothing_stored(client):
    user = create_user(client, first_name="Ada", last_name="Lovelace")

    response = client.post("/templates/birthday/default/preview", json={"user_id": user["id"]})

    assert response.get_json()["text"] == "Hey, Ada Lovelace it's your birthday"


def test_a_preview_for_a_user_without_the_occasion_is_422_naming_user_id(client):
    user = create_user(client, anniversary_date=None)

    response = client.post("/templates/anniversary/default/preview", json={"user_id": user["id"]})

    assert_error(response, 422)
    assert_field_error(response, "user_id")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"user_id": "00000000-0000-4000-8000-000000000000"}, 404, None),
        ({"user_id": "not-a-uuid"}, 422, "user_id"),
        ({}, 422, "user_id"),
    ],
)
def test_a_preview_for_no_such_user_is_refused(client, body, code, field):
    response = client.post("/templates/birthday/default/preview", json=body)

    assert_error(response, code)
    if field:
        assert_field_error(response, field)


def test_a_users_locale_is_kept_in_its_one_spelling_and_can_be_cleared(client):
    user = create_user(client, locale="PT-br")

    assert user["locale"] == "pt-BR"
    patched = client.patch(f"/users/{user['id']}", json={"locale": None}).get_json()
    assert patched["locale"] is None


@pytest.mark.parametrize("locale", ["portuguese", "pt_BR", "default", "", 7])
def test_a_users_locale_that_is_not_a_language_tag_is_422_naming_it(client, locale):
    response = client.post(
        "/users",
        json={
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "timezone": "UTC",
            "birthday_date": "1990-12-10",
            "locale": locale,
        },
    )

    assert_error(response, 422)
    assert_field_error(response, "locale")
