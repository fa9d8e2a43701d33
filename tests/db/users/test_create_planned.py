"""Creating a user and planning their greetings in one statement
(repositories.users.insert_planned) plans exactly what inserting the user and then
running the general planning statement for them plans."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from planning import for_users as planning
from repositories import suppressions, users

NINE = time(9)
CASES = [
    ("plain birthday", {"birthday_date": date(1990, 12, 10)}, "Europe/London"),
    (
        "both occasions",
        {"birthday_date": date(1985, 1, 2), "anniversary_date": date(2010, 7, 8)},
        "America/New_York",
    ),
    ("anniversary only", {"anniversary_date": date(2001, 3, 4)}, "Asia/Kathmandu"),
    ("born on Feb 29", {"birthday_date": date(1992, 2, 29)}, "Pacific/Kiritimati"),
    ("-12:00", {"birthday_date": date(1970, 6, 15)}, "Etc/GMT+12"),
    ("today's birthday, after 09:00", {"birthday_date": date(1990, 3, 1)}, "UTC"),
]
INSTANTS = [
    datetime(2027, 3, 1, 12, 0, tzinfo=UTC),  # after 09:00 on a Mar 1 after no Feb 29
    datetime(2028, 2, 28, 23, 0, tzinfo=UTC),  # a leap year, Feb 29 ahead in some zones
    datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # a new year already in the east
]
PLANNED = (
    "SELECT message_type, occasion_date, message_content, scheduled_send_time,"
    " next_attempt_at, status, idempotency_key FROM message_logs WHERE user_id = %s"
    " ORDER BY message_type"
)


def planned_for(conn, user_id) -> list[tuple]:
    rows = conn.execute(PLANNED, (user_id,)).fetchall()
    return [tuple(value for key, value in row.items() if key != "idempotency_key") for row in rows]


def data_for(number: int, dates: dict, zone: str) -> dict:
    return {
        "first_name": "Ada",
        "last_name": f"Lovelace{number}",
        "email": f"ada{number}@example.com",
        "timezone": zone,
        **dates,
    }


@pytest.mark.parametrize("now", INSTANTS)
@pytest.mark.parametrize(("case", "dates", "zone"), CASES, ids=[c[0] for c in CASES])
def test_one_statement_plans_what_insert_then_planning_plans(conn, now, case, dates, zone):
    two_steps = users.insert(conn, data_for(1, dates, zone))
    planning.plan_user(conn, two_steps["id"], now, NINE)

    one_statement = users.insert_planned(conn, data_for(2, dates, zone), now, NINE)

    assert one_statement == {
        **two_steps,
        "id": one_statement["id"],
        "last_name": "Lovelace2",
        "email": "ada2@example.com",
        "created_at": one_statement["created_at"],
        "updated_at": one_statement["updated_at"],
    }
    expected = [
        (*row[:2], row[2].replace("Lovelace1", "Lovelace2"), *row[3:])
        for row in planned_for(conn, two_steps["id"])
    ]
    assert expected  # every case plans at least one greeting
    assert planned_for(conn, one_statement["id"]) == expected
    keys = [row["idempotency_key"] for row in conn.execute(PLANNED, (one_statement["id"],))]
    assert all(key.startswith(str(one_statement["id"])) for key in keys)


def test_a_suppressed_address_gets_the_user_and_no_greeting(conn):
    suppressions.add(conn, "ada9@example.com", "manual", "api")

    created = users.insert_planned(
        conn, data_for(9, {"birthday_date": date(1990, 12, 10)}, "UTC"), INSTANTS[0], NINE
    )

    assert created["email"] == "ada9@example.com"
    assert planned_for(conn, created["id"]) == []
