"""Time zones on the real PostgreSQL: pinned abbreviations, the tzdata refresh (the
`flask db refresh-zones` command and psql's refresh_tzdata()) and the start-up check
that PostgreSQL and zoneinfo agree on the zones users have.

Each test changes time_zones or database settings, so each has a database of its own.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from api.resources import resources_of
from app import check_zone_agreement, create_app
from config import Settings
from db.pool import connect
from operations import time_zones
from planning import for_users as planning
from repositories import planned_changes, users
from schema import admin

NINE = time(9, 0)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_numbers = itertools.count()


def service_connection(url: str) -> psycopg.Connection:
    """A connection opened as the service opens them (options included)."""
    return connect(Settings.from_env({}, database_url=url), "birthday-test")


def plain_connection(url: str) -> psycopg.Connection:
    """A connection with the server's and database's own settings, as psql would get."""
    return psycopg.connect(url, row_factory=dict_row, autocommit=True)


def add_planned_user(conn: psycopg.Connection, zone: str, birthday: date) -> dict:
    """A committed user in `zone`, planned for `NOW`; the user row."""
    with conn.transaction():
        user = users.insert(
            conn,
            {
                "first_name": "Zone",
                "last_name": f"User{next(_numbers)}",
                "email": f"zone{next(_numbers)}@example.com",
                "timezone": zone,
                "birthday_date": birthday,
            },
        )
        planning.plan_user(conn, user["id"], NOW, NINE)
    return user


def instants(conn: psycopg.Connection) -> dict[tuple, tuple]:
    """Every message: (user_id, type, occasion_date) -> (status, send time, next attempt)."""
    rows = conn.execute(
        "SELECT user_id, message_type, occasion_date, status, scheduled_send_time,"
        " next_attempt_at FROM message_logs"
    ).fetchall()
    return {
        (r["user_id"], r["message_type"], r["occasion_date"]): (
            r["status"],
            r["scheduled_send_time"],
            r["next_attempt_at"],
        )
        for r in rows
    }


def point_zone_at(conn: psycopg.Connection, zone: str, compute_as: str) -> None:
    """Make the database compute `zone` by another zone's rules (as old tzdata might)."""
    with conn.transaction():
        conn.execute(
            "UPDATE time_zones SET compute_as = %(other)s WHERE name = %(zone)s",
            {"zone": zone, "other": compute_as},
        )


def at_nine(day: date, zone: str) -> datetime:
    return datetime.combine(day, NINE, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.fixture
def world(fresh_db_url):
    """Users in London (one SCHEDULED, one QUEUED), Berlin, CET and EST, planned while the
    database computed London by Tokyo's rules."""
    with service_connection(fresh_db_url) as conn:
        point_zone_at(conn, "Europe/London", "Asia/Tokyo")
        london = add_planned_user(conn, "Europe/London", date(1990, 7, 10))
        london_queued = add_planned_user(conn, "Europe/London", date(1990, 8, 10))
        others = [
            add_planned_user(conn, zone, date(1990, 7, 10))
            for zone in ("Europe/Berlin", "CET", "EST")
        ]
        with conn.transaction():
            conn.execute(
                "UPDATE message_logs SET status = 'QUEUED' WHERE user_id = %(id)s",
                {"id": london_queued["id"]},
            )
        before = instants(conn)
    return {
        "url": fresh_db_url,
        "london": london,
        "london_queued": london_queued,
        "others": others,
        "before": before,
    }


def moved_keys(before: dict, after: dict) -> set[tuple]:
    return {key for key in before if before[key] != after[key]}


def test_refresh_zones_command_moves_exactly_the_scheduled_greetings_whose_zone_changed(world):
    app = create_app({"DATABASE_URL": world["url"], "TESTING": True})
    london_key = (world["london"]["id"], "BIRTHDAY", date(2026, 7, 10))
    assert world["before"][london_key][1] == at_nine(date(2026, 7, 10), "Asia/Tokyo")

    result = app.test_cli_runner().invoke(args=["db", "refresh-zones"])

    assert result.exit_code == 0, result.output
    assert "1 time zone(s) added or changed; 1 scheduled greeting(s) moved" in result.output
    with service_connection(world["url"]) as conn:
        after = instants(conn)
    assert moved_keys(world["before"], after) == {london_key}
    london_nine = at_nine(date(2026, 7, 10), "Europe/London")
    assert after[london_key] == ("SCHEDULED", london_nine, london_nine)
    resources_of(app).pool.close()


def test_refresh_zones_a_second_time_changes_nothing(world):
    with service_connection(world["url"]) as conn:
        first = time_zones.refresh_zones(conn, NINE)
        after_first = instants(conn)
        second = time_zones.refresh_zones(conn, NINE)
        after_second = instants(conn)

    assert first == time_zones.ZoneRefresh(zones_changed=1, greetings_moved=1)
    assert second == time_zones.ZoneRefresh(zones_changed=0, greetings_moved=0)
    assert after_second == after_first


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_refresh_tzdata_in_psql_moves_the_same_greetings_and_reports_them(world):
    psql = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", world["url"]]
    command = [*psql, "-c", "SELECT * FROM refresh_tzdata('09:00')"]

    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "1|1"
    assert second.stdout.strip() == "0|0"
    with service_connection(world["url"]) as conn:
        after = instants(conn)
    london_key = (world["london"]["id"], "BIRTHDAY", date(2026, 7, 10))
    assert moved_keys(world["before"], after) == {london_key}


def test_a_database_level_abbreviation_set_cannot_move_a_greeting(fresh_db_url):
    # Given greetings planned under the default abbreviations
    with service_connection(fresh_db_url) as conn:
        planned = [
            add_planned_user(conn, zone, date(1990, 1, 15))
            for zone in ("EST", "CET", "America/New_York", "Australia/Sydney")
        ]
        before = instants(conn)

    # When the database is set to the Australian set, where EST means +10:00
    with plain_connection(fresh_db_url) as conn:
        conn.execute(
            f"ALTER DATABASE {admin.database_name(fresh_db_url)}"
            " SET timezone_abbreviations = 'Australia'"
        )
    with plain_connection(fresh_db_url) as conn:
        assert conn.execute("SHOW timezone_abbreviations").fetchone() == {
            "timezone_abbreviations": "Australia"
        }
        est_there = conn.execute(
            "SELECT '2027-01-15 09:00'::timestamp AT TIME ZONE 'EST' AS t"
        ).fetchone()["t"]
        assert est_there == datetime(2027, 1, 14, 23, 0, tzinfo=UTC)  # the setting is live
        psql_refresh = conn.execute("SELECT * FROM refresh_tzdata('09:00')").fetchone()

    # Then the service's connections still read the default set, and neither replanning
    # nor the refresh (even from a connection with the database's setting) moves anything
    with service_connection(fresh_db_url) as conn:
        assert conn.execute("SHOW timezone_abbreviations").fetchone() == {
            "timezone_abbreviations": "Default"
        }
        with conn.transaction():
            for user in planned:
                planning.replan_user(conn, user["id"], NOW, NINE)
            retimed = planned_changes.retime_scheduled(conn, NINE)
        after = instants(conn)
    assert psql_refresh == {"zones_changed": 0, "greetings_moved": 0}
    assert retimed == 0
    assert after == before
    est_user = (planned[0]["id"], "BIRTHDAY", date(2027, 1, 15))
    assert after[est_user][1] == datetime(2027, 1, 15, 14, 0, tzinfo=UTC)


def test_the_zones_users_have_agree_with_zoneinfo_after_migration(fresh_db_url):
    with service_connection(fresh_db_url) as conn:
        for zone in ("CET", "EET", "MET", "WET", "EST", "Europe/London", "Asia/Kathmandu"):
            add_planned_user(conn, zone, date(1990, 1, 15))
        sampled = len(time_zones.sample_days(NOW.date()))

        differing = time_zones.disagreeing_zones(conn, NOW, NINE)

    assert sampled > 100
    assert differing == []


def test_the_api_warns_at_start_naming_the_zones_the_database_computes_differently(
    fresh_db_url, caplog
):
    with service_connection(fresh_db_url) as conn:
        for zone in ("Europe/London", "Europe/Paris", "CET"):
            add_planned_user(conn, zone, date(1990, 1, 15))
        point_zone_at(conn, "Europe/Paris", "Europe/London")
        point_zone_at(conn, "Asia/Tokyo", "Asia/Seoul")  # nobody lives there: not checked
    app = create_app({"DATABASE_URL": fresh_db_url, "TESTING": True})
    resources_of(app).pool.open(wait=True, timeout=10)
    caplog.set_level(logging.WARNING, logger="operations.time_zones")

    differing = check_zone_agreement(app)

    resources_of(app).pool.close()
    assert differing == ["Europe/Paris"]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "operations.time_zones" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "Europe/Paris" in warnings[0]
    assert "Europe/London" not in warnings[0]
