"""What an edit of a user does to their greetings: a change that does not move an
occasion leaves its greeting alone, a change that moves it replaces it, and a greeting
already owed (its instant passed, its deadline not) is sent unless the occasion is gone.

Real PostgreSQL, fixed `now` instants (the worker's take stands in for the worker).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

from planning import for_users as planning
from tests.db.delivery.test_dispatch import configured, take
from tests.factories import make_message, make_user, messages_of
from users import directory as users_service

NINE = time(9, 0)
# 26 Nov 2026 in London (UTC in November): the greeting was due at 09:00.
TODAY = date(2026, 11, 26)
DUE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LATER_THAT_DAY = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at_nine(day: date, zone: str) -> datetime:
    return datetime.combine(day, NINE, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def owed_greeting(conn: psycopg.Connection, status: str = "RETRYING", **user_fields) -> dict:
    """A London user's birthday greeting for TODAY, due at 09:00 and not sent yet:
    RETRYING after two provider failures (or in `status`)."""
    user = make_user(conn, birthday=date(1990, 11, 26), **user_fields)
    columns = {"retry_count": 2, "next_attempt_at": DUE + timedelta(hours=4)}
    if status == "QUEUED":
        columns = {"locked_until": LATER_THAT_DAY + timedelta(minutes=10)}
    return make_message(
        conn,
        user,
        status=status,
        scheduled=DUE,
        occasion_date=TODAY,
        message_content="Hey, Ada Lovelace it's your birthday",
        **columns,
    )


def current(conn: psycopg.Connection, greeting: dict) -> dict:
    """The greeting's row now, with its tuple's address (`ctid`: any UPDATE moves it)."""
    return conn.execute(
        "SELECT *, ctid::text AS ctid FROM message_logs WHERE id = %s", (greeting["id"],)
    ).fetchone()


def states(conn: psycopg.Connection, user_id) -> set[tuple[str, date, str]]:
    return {
        (row["message_type"], row["occasion_date"], row["status"])
        for row in messages_of(conn, user_id)
    }


def patch(conn: psycopg.Connection, user_id, now: datetime, **changes) -> dict:
    return users_service.patch_user(conn, user_id, changes, now, NINE)


# --- a change that does not move the occasion ---------------------------------------------


def test_a_name_change_leaves_an_overdue_retrying_greeting_owed_with_the_new_name(conn):
    greeting = owed_greeting(conn)

    patch(conn, greeting["user_id"], LATER_THAT_DAY, last_name="Byron")

    after = current(conn, greeting)
    assert after["status"] == "RETRYING"
    assert (after["retry_count"], after["next_attempt_at"]) == (2, greeting["next_attempt_at"])
    assert after["scheduled_send_time"] == DUE  # its deadline counts from here, as before
    assert after["message_content"] == "Hey, Ada Byron it's your birthday"
    assert states(conn, greeting["user_id"]) == {("BIRTHDAY", TODAY, "RETRYING")}


def test_a_name_change_leaves_yesterdays_greeting_owed_inside_its_deadline(conn):
    # Given yesterday's birthday greeting, still RETRYING (the provider was down)
    user = make_user(conn, birthday=date(1990, 11, 25))
    yesterday = make_message(
        conn,
        user,
        status="RETRYING",
        scheduled=DUE - timedelta(days=1),
        occasion_date=TODAY - timedelta(days=1),
        retry_count=3,
        next_attempt_at=LATER_THAT_DAY + timedelta(minutes=30),
    )

    # When the user's last name changes
    patch(conn, user["id"], LATER_THAT_DAY, last_name="King")

    # Then it is still owed (27 hours late, inside 48), and next year's is not planned yet
    assert current(conn, yesterday)["status"] == "RETRYING"
    assert states(conn, user["id"]) == {("BIRTHDAY", TODAY - timedelta(days=1), "RETRYING")}


def test_a_name_change_leaves_a_queued_greeting_queued_under_its_lease(conn):
    greeting = owed_greeting(conn, status="QUEUED")

    patch(conn, greeting["user_id"], LATER_THAT_DAY, first_name="Augusta")

    after = current(conn, greeting)
    assert (after["status"], after["locked_until"]) == ("QUEUED", greeting["locked_until"])
    assert after["message_content"] == "Hey, Augusta Lovelace it's your birthday"


def test_an_email_and_city_change_does_not_touch_a_pending_greeting(conn):
    greeting = current(conn, owed_greeting(conn))

    patch(
        conn,
        greeting["user_id"],
        LATER_THAT_DAY,
        email="ada.byron@example.com",
        location_city="Paris",
    )

    assert current(conn, greeting) == greeting  # not written at all


def test_the_same_birthday_in_another_year_keeps_an_overdue_greeting(conn):
    greeting = owed_greeting(conn)

    patch(conn, greeting["user_id"], LATER_THAT_DAY, birthday_date=date(1991, 11, 26))

    after = current(conn, greeting)
    assert (after["status"], after["retry_count"]) == ("RETRYING", 2)


def test_a_zone_change_leaves_an_overdue_greeting_owed_at_its_first_instant(conn):
    # Given a Honolulu birthday on 7 Dec whose 09:00 has passed: the provider was down
    zone = "Pacific/Honolulu"
    user = make_user(conn, timezone=zone, birthday=date(1990, 12, 7))
    greeting = make_message(
        conn,
        user,
        status="RETRYING",
        scheduled=at_nine(date(2026, 12, 7), zone),
        occasion_date=date(2026, 12, 7),
        retry_count=1,
    )
    ten_in_honolulu = datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo(zone))

    # When the user moves across the date line, to where it is already 8 Dec
    patch(conn, user["id"], ten_in_honolulu, timezone="Pacific/Kiritimati")

    # Then the greeting still owed for 7 Dec goes out, nothing else is planned before it
    after = current(conn, greeting)
    assert (after["status"], after["scheduled_send_time"]) == (
        "RETRYING",
        greeting["scheduled_send_time"],
    )
    assert states(conn, user["id"]) == {("BIRTHDAY", date(2026, 12, 7), "RETRYING")}


# --- a change that moves the occasion -----------------------------------------------------


def test_a_zone_change_across_the_date_line_before_nine_keeps_todays_greeting(conn):
    # Given a Honolulu birthday on 7 Dec, at 08:00 that morning: greeting planned for 09:00
    zone = "Pacific/Honolulu"
    user = make_user(conn, timezone=zone, birthday=date(1990, 12, 7))
    eight_in_honolulu = datetime(2026, 12, 7, 8, 0, tzinfo=ZoneInfo(zone))
    planning.plan_user(conn, user["id"], eight_in_honolulu, NINE)
    [planned] = messages_of(conn, user["id"])

    # When the user moves to Kiritimati, where 7 Dec 09:00 was 23 hours ago
    patch(conn, user["id"], eight_in_honolulu, timezone="Pacific/Kiritimati")

    # Then the same greeting is due at once (well inside its deadline), not next year's
    [after] = messages_of(conn, user["id"])
    assert (after["id"], after["idempotency_key"]) == (planned["id"], planned["idempotency_key"])
    assert after["status"] == "SCHEDULED"
    assert after["scheduled_send_time"] == at_nine(date(2026, 12, 7), "Pacific/Kiritimati")
    assert after["scheduled_send_time"] < eight_in_honolulu
    assert after["next_attempt_at"] == after["scheduled_send_time"]


def test_a_birthday_change_cancels_an_overdue_greeting_and_plans_the_new_date(conn):
    greeting = owed_greeting(conn)

    patch(conn, greeting["user_id"], LATER_THAT_DAY, birthday_date=date(1990, 12, 20))

    after = current(conn, greeting)
    assert after["status"] == "CANCELLED"
    assert "changed" in after["error_message"]
    assert states(conn, greeting["user_id"]) == {
        ("BIRTHDAY", TODAY, "CANCELLED"),
        ("BIRTHDAY", date(2026, 12, 20), "SCHEDULED"),
    }


def test_removing_the_anniversary_cancels_its_overdue_greeting_and_keeps_the_birthday(conn):
    user = make_user(conn, birthday=date(1990, 12, 10), anniversary=date(2015, 11, 26))
    anniversary = make_message(
        conn,
        user,
        status="RETRYING",
        scheduled=DUE,
        occasion_date=TODAY,
        message_type="ANNIVERSARY",
        retry_count=1,
    )
    planning.plan_user(conn, user["id"], LATER_THAT_DAY, NINE)

    patch(conn, user["id"], LATER_THAT_DAY, anniversary_date=None)

    assert current(conn, anniversary)["status"] == "CANCELLED"
    assert states(conn, user["id"]) == {
        ("ANNIVERSARY", TODAY, "CANCELLED"),
        ("BIRTHDAY", date(2026, 12, 10), "SCHEDULED"),
    }


# --- a greeting the worker ends -----------------------------------------------------------


def test_a_greeting_the_worker_cancels_plans_the_users_next_one_at_once(db_url, db, pool):
    # Given a greeting taken back from a worker (recovery) after its user's birthday moved
    # while it was SENDING, when an edit leaves the row to its worker
    settings = configured(db_url)
    greeting = owed_greeting(db, status="QUEUED")
    db.execute(
        "UPDATE users SET birthday_date = %s WHERE id = %s",
        (date(1990, 11, 27), greeting["user_id"]),
    )

    # When a worker takes it
    taken = take(pool, greeting["id"], LATER_THAT_DAY, settings)

    # Then it is cancelled and the new date is planned in the same breath, not an hour later
    assert taken["status"] == "CANCELLED"
    assert states(db, greeting["user_id"]) == {
        ("BIRTHDAY", TODAY, "CANCELLED"),
        ("BIRTHDAY", date(2026, 11, 27), "SCHEDULED"),
    }


# --- through the API ----------------------------------------------------------------------


def test_a_patch_of_the_last_name_through_the_api_keeps_an_owed_greeting(client, db):
    london_today = datetime.now(ZoneInfo("Europe/London")).date()
    user = make_user(db, birthday=london_today.replace(year=1992))  # a leap year: Feb 29 too
    owed = make_message(
        db,
        user,
        status="RETRYING",
        scheduled=datetime.now(UTC) - timedelta(hours=2),
        occasion_date=london_today,
        retry_count=1,
    )

    response = client.patch(f"/users/{user['id']}", json={"last_name": "Byron"})

    assert response.status_code == 200, response.get_json()
    after = current(db, owed)
    assert (after["status"], after["retry_count"]) == ("RETRYING", 1)
    assert after["message_content"] == "Hey, Ada Byron it's your birthday"
