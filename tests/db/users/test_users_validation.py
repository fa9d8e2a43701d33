"""The /users API, validating fields: what POST /users refuses with a 422 naming the field,
and what it accepts, through the Flask test client on the real PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.factories import (
    OMIT,
    assert_rejected,
    create_user,
    stored_user,
    user_payload,
    utc_today_plus,
)

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


# --- validation: invisible characters and zone-file aliases --------------------------------


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
