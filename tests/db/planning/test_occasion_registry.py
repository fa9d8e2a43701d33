"""The occasion registry against the real schema: every occasion it declares has its
column and its name in the CHECK, and a third occasion declared in a test only (its
column added to a scratch database) is planned, rendered and followed like the others.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import psycopg
from psycopg.rows import dict_row

from domain.occasions import OCCASIONS, LeapDay, Occasion, Occasions
from repositories import occasion_sql, occurrences
from tests.factories import make_user, messages_of

NINE = time(9, 0)
NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
WORK = Occasion(
    message_type="WORK_ANNIVERSARY",
    date_field="work_anniversary_date",
    default_text="Hey, {first_name} {last_name} happy {first_name}-day at work, 100% deserved",
    leap_day=LeapDay.MAR_1,
)
THREE = Occasions(*OCCASIONS, WORK)


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC")


def add_work_anniversary_column(conn: psycopg.Connection) -> None:
    """What the migration adding the occasion would do (docs/extending.md)."""
    types = ", ".join(f"'{t}'" for t in THREE.types)
    conn.execute("ALTER TABLE users ADD COLUMN work_anniversary_date date")
    conn.execute(
        "ALTER TABLE users ADD CONSTRAINT users_work_anniversary_range"
        " CHECK (work_anniversary_date >= DATE '1900-01-01')"
    )
    conn.execute("ALTER TABLE message_logs DROP CONSTRAINT message_logs_type_check")
    conn.execute(
        f"ALTER TABLE message_logs ADD CONSTRAINT message_logs_type_check"
        f" CHECK (message_type IN ({types}))"
    )


def user_with_a_work_anniversary(conn: psycopg.Connection) -> dict:
    """In a scratch database with the third occasion's column: a user with a birthday on
    10 Dec and a work anniversary on Feb 29."""
    add_work_anniversary_column(conn)
    user = make_user(conn, birthday=date(1990, 12, 10))
    conn.execute(
        "UPDATE users SET work_anniversary_date = '2016-02-29' WHERE id = %s", (user["id"],)
    )
    return user


def test_every_occasion_of_the_registry_has_its_column_range_check_and_type(conn):
    columns = {
        row["column_name"]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )
    }
    checks = {
        row["conname"]: row["definition"]
        for row in conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
            " WHERE conrelid IN ('users'::regclass, 'message_logs'::regclass)"
        )
    }

    assert set(OCCASIONS.date_fields) <= columns
    for field in OCCASIONS.date_fields:
        assert f"users_{field.removesuffix('_date')}_range" in checks
    type_check = checks["message_logs_type_check"]
    assert sorted(t for t in OCCASIONS.types if f"'{t}'" in type_check) == sorted(OCCASIONS.types)
    assert type_check.count("'") == 2 * len(OCCASIONS)  # no name the registry lacks


def test_a_third_occasion_is_planned_with_its_own_leap_day_rule_and_text(fresh_db_url):
    with connect(fresh_db_url) as conn:
        user = user_with_a_work_anniversary(conn)

        missing = occurrences.users_missing_an_occurrence(conn, 10, occasions=THREE)
        planned = occurrences.plan_next_occurrences(
            conn, NOW, NINE, user_ids=[user["id"]], occasions=THREE
        )
        rows = {row["message_type"]: row for row in messages_of(conn, user["id"])}

    assert missing == [user["id"]]
    assert planned == 2
    work = rows["WORK_ANNIVERSARY"]
    assert work["occasion_date"] == date(2027, 3, 1)  # its rule, not the birthday's Feb 28
    assert work["scheduled_send_time"] == datetime(2027, 3, 1, 9, tzinfo=UTC)  # London
    assert work["message_content"] == ("Hey, Ada Lovelace happy Ada-day at work, 100% deserved")
    assert work["idempotency_key"] == f"{user['id']}:WORK_ANNIVERSARY:2027-03-01"
    assert rows["BIRTHDAY"]["occasion_date"] == date(2027, 12, 10)


def test_a_third_occasion_is_still_on_its_date_until_its_date_changes(fresh_db_url):
    with connect(fresh_db_url) as conn:
        user = user_with_a_work_anniversary(conn)
        occurrences.plan_next_occurrences(conn, NOW, NINE, user_ids=[user["id"]], occasions=THREE)
        query = psycopg.sql.SQL(
            "SELECT {} AS on_date FROM message_logs m JOIN users u ON u.id = m.user_id"
            " WHERE m.message_type = 'WORK_ANNIVERSARY'"
        ).format(occasion_sql.still_on_its_date(THREE))

        before = conn.execute(query).fetchone()["on_date"]
        conn.execute(
            "UPDATE users SET work_anniversary_date = '2016-03-02' WHERE id = %s", (user["id"],)
        )
        after = conn.execute(query).fetchone()["on_date"]

    assert (before, after) == (True, False)


def test_a_registry_without_an_occasion_gives_its_greetings_no_text_and_no_date(fresh_db_url):
    # No ELSE anywhere: a type the registry does not declare never borrows another's
    # text or date (the two-occasion registry, asked about a work anniversary).
    with connect(fresh_db_url) as conn:
        text = conn.execute(
            psycopg.sql.SQL("SELECT {} AS text").format(
                occasion_sql.greeting_text(
                    OCCASIONS, "'WORK_ANNIVERSARY'::text", "'Ada'::text", "'King'::text"
                )
            )
        ).fetchone()["text"]
        original = conn.execute(
            psycopg.sql.SQL(
                "SELECT {} AS original FROM (SELECT DATE '1990-12-10' AS birthday_date,"
                " DATE '2015-06-20' AS anniversary_date, '{{}}'::text[] AS unsubscribed) AS u"
            ).format(occasion_sql.original_date(OCCASIONS, "'WORK_ANNIVERSARY'::text"))
        ).fetchone()["original"]

    assert (text, original) == (None, None)
