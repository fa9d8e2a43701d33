"""The SQL calendar functions against the plain-Python rules (domain/occasions.py).

Python's zoneinfo and PostgreSQL both read the system tz database here; these
tests prove they agree on every zone the service accepts, and that it accepts
every zone zoneinfo does (but the non-zones), computed by time_zones.compute_as.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, available_timezones

import psycopg
import pytest
from psycopg.rows import tuple_row

from domain.occasions import (
    OCCASIONS,
    LeapDay,
    next_occasion_date,
    occasion_in_year,
    send_instant,
)
from repositories import occasion_sql
from users.rules import NOT_ZONES

FIRST_DAY, LAST_DAY = date(2024, 1, 1), date(2030, 12, 31)
DST_ZONES = [
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "America/Havana",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Dublin",
    "Asia/Jerusalem",
    "Asia/Beirut",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "America/Nuuk",
    "CET",
    "EET",
    "MET",
    "WET",
]


def _mismatches(conn: psycopg.Connection, query: str, params: dict, expected) -> list:
    """Rows (zone, day, sql_instant, send_time) whose instant differs from Python's."""
    wrong = []
    zones: dict[str, ZoneInfo] = {}
    with conn.cursor(name="reference", row_factory=tuple_row) as cursor:
        cursor.itersize = 50_000
        cursor.execute(query, params)
        for zone_name, day, instant, send_time in cursor:
            zone = zones.setdefault(zone_name, ZoneInfo(zone_name))
            if expected(day, zone, send_time) != instant:
                wrong.append((zone_name, day, instant, send_time))
    return wrong


def _zoneinfo_zones() -> set[str]:
    return set(available_timezones()) - NOT_ZONES


def _user_in(zone: str, email: str, last_name: str = "Check", birthday: str = "1990-01-01") -> dict:
    """A POST /users body for a user living in `zone`."""
    return {
        "first_name": "Zone",
        "last_name": last_name,
        "email": email,
        "timezone": zone,
        "birthday_date": birthday,
    }


@pytest.mark.timeout(600)  # 1.5 million instants, on a machine shared with other work
def test_sql_send_instant_matches_python_for_every_zone_zoneinfo_accepts_and_day(conn):
    # One query: every zone of time_zones x every day of 2024-2030 at 09:00, computed
    # by its compute_as and compared with zoneinfo reading the user's own spelling.
    query = """
        SELECT z.name, d::date, local_send_instant(d::date, %(t)s, z.compute_as), %(t)s
        FROM time_zones z
        CROSS JOIN generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
    """
    params = {"t": time(9, 0), "first": FIRST_DAY, "last": LAST_DAY}

    wrong = _mismatches(conn, query, params, send_instant)

    supported = {row["name"] for row in conn.execute("SELECT name FROM time_zones")}
    assert supported == _zoneinfo_zones()
    assert {"CET", "EET", "MET", "WET"} <= supported
    assert wrong == []


def test_sql_matches_python_at_the_hours_clocks_change(conn):
    # Gaps move forward, repeated hours take the first instant, in both languages.
    query = """
        SELECT z.name, d::date, local_send_instant(d::date, t, z.compute_as), t
        FROM time_zones z
        CROSS JOIN unnest(%(times)s::time[]) AS t
        CROSS JOIN generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
        WHERE z.name = ANY(%(zones)s::text[])
    """
    times = [
        time(0, 0),
        time(0, 30),
        time(1, 0),
        time(1, 30),
        time(2, 0),
        time(2, 30),
        time(3, 0),
        time(23, 30),
    ]
    params = {"zones": DST_ZONES, "times": times, "first": FIRST_DAY, "last": LAST_DAY}

    wrong = _mismatches(conn, query, params, send_instant)

    assert wrong == []


@pytest.mark.parametrize(
    ("zone", "winter_utc_hour", "summer_utc_hour"),
    [("CET", 8, 7), ("MET", 8, 7), ("EET", 7, 6), ("WET", 9, 8)],
)
def test_a_user_in_a_zone_that_is_also_an_abbreviation_is_greeted_at_nine_local(
    client, conn, zone, winter_utc_hour, summer_utc_hour
):
    # Given users in the zone, one with a winter and one with a summer birthday
    instants = {}
    for season, birthday in (("winter", "1990-01-15"), ("summer", "1990-07-15")):
        body = _user_in(zone, f"{season}@example.com", last_name=season, birthday=birthday)
        response = client.post("/users", json=body)
        # Then each is created with the spelling sent, and planned at 09:00 local
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["timezone"] == zone
        user_id = response.get_json()["id"]
        assert client.get(f"/users/{user_id}").get_json()["timezone"] == zone
        (message,) = client.get(f"/users/{user_id}/messages").get_json()
        instants[season] = datetime.fromisoformat(message["scheduled_send_time"])

    for season, hour in (("winter", winter_utc_hour), ("summer", summer_utc_hour)):
        instant = instants[season]
        assert instant.astimezone(UTC).hour == hour
        assert instant.astimezone(ZoneInfo(zone)).time() == time(9, 0)


@pytest.mark.timeout(300)  # one request per zone, ~600
def test_every_zone_zoneinfo_accepts_is_accepted_by_the_api(client):
    statuses = {
        zone: client.post("/users", json=_user_in(zone, f"{zone}@example.com")).status_code
        for zone in sorted(_zoneinfo_zones())
    }

    assert len(statuses) > 590
    assert {zone for zone, status in statuses.items() if status != 201} == set()


@pytest.mark.parametrize("zone", sorted(NOT_ZONES))
def test_a_non_zone_is_refused_with_a_422_naming_the_field(client, zone):
    response = client.post("/users", json=_user_in(zone, "nonzone@example.com"))

    assert response.status_code == 422
    assert "timezone" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("leap_day", list(LeapDay))
@pytest.mark.parametrize("year", range(2024, 2031))
def test_sql_occasion_in_year_matches_python_for_every_day_of_a_leap_year(conn, year, leap_day):
    rows = conn.execute(
        "SELECT d::date AS original, occasion_in_year(d::date, %(year)s, %(rule)s) AS celebrated"
        " FROM generate_series('2000-01-01'::date, '2000-12-31', interval '1 day') AS d",
        {"year": year, "rule": leap_day.value},
    ).fetchall()

    assert len(rows) == 366
    expected = [occasion_in_year(r["original"], year, leap_day) for r in rows]
    assert [r["celebrated"] for r in rows] == expected


def test_the_two_argument_sql_occasion_in_year_is_the_feb_28_rule(conn):
    rows = conn.execute(
        "SELECT occasion_in_year(DATE '2000-02-29', y) AS two,"
        " occasion_in_year(DATE '2000-02-29', y, 'feb28') AS three"
        " FROM generate_series(2024, 2031) AS y"
    ).fetchall()

    assert all(r["two"] == r["three"] for r in rows)


@pytest.mark.parametrize("leap_day", list(LeapDay))
def test_sql_next_occasion_date_matches_python(conn, leap_day):
    rows = conn.execute(
        """
        SELECT o::date AS original, t::date AS today,
               next_occasion_date(o::date, t::date, %(rule)s) AS next
        FROM generate_series('2000-01-01'::date, '2000-12-31', interval '3 days') AS o
        CROSS JOIN generate_series('2027-01-01'::date, '2028-12-31', interval '1 day') AS t
        """,
        {"rule": leap_day.value},
    ).fetchall()

    wrong = [
        r for r in rows if next_occasion_date(r["original"], r["today"], leap_day) != r["next"]
    ]
    assert len(rows) > 80_000
    assert wrong == []


@pytest.mark.parametrize("occasion", OCCASIONS.all, ids=OCCASIONS.types)
def test_sql_greeting_text_matches_python(conn, occasion):
    query = psycopg.sql.SQL("SELECT {} AS text").format(
        occasion_sql.greeting_text(OCCASIONS, "%(type)s::text", "'Ada'::text", "'Lovelace'::text")
    )
    text = conn.execute(query, {"type": occasion.message_type}).fetchone()["text"]

    assert text == occasion.greeting("Ada", "Lovelace")
    assert text != ""
