"""import_date: an import's date text read without raising, in one inlined expression."""

from __future__ import annotations

from datetime import UTC, date, datetime
from datetime import time as clock_time

import pytest

from imports.sync import import_users
from repositories.user_imports import FIELDS

READINGS = [
    ("1990-12-10", date(1990, 12, 10)),
    ("2000-02-29", date(2000, 2, 29)),  # divisible by 400: a leap year
    ("2024-02-29", date(2024, 2, 29)),
    ("1900-02-29", None),  # divisible by 100, not 400: not a leap year
    ("2023-02-29", None),
    ("2023-02-28", date(2023, 2, 28)),
    ("1990-02-30", None),
    ("1990-04-30", date(1990, 4, 30)),
    ("1990-04-31", None),
    ("1990-12-31", date(1990, 12, 31)),
    ("1990-13-01", None),
    ("1990-00-10", None),
    ("1990-01-00", None),
    ("0000-01-01", None),  # there is no year zero
    ("0001-01-01", date(1, 1, 1)),
    ("9999-12-31", date(9999, 12, 31)),
    ("1990-1-10", None),
    ("19901210", None),
    ("1990-12-10x", None),
    ("10-12-1990", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), READINGS)
def test_a_date_is_read_only_when_it_is_a_real_calendar_date(db, text, expected):
    row = db.execute("SELECT import_date(%s) AS day", (text,)).fetchone()
    assert row["day"] == expected


def test_the_reading_is_inlined_into_the_statement_not_called_per_row(db):
    # An IMMUTABLE SQL function is inlined only if its body is immutable too; a call
    # per row costs several times the expression (a million rows: seconds).
    plan = db.execute(
        "EXPLAIN (VERBOSE, COSTS OFF)"
        " SELECT import_date(v) FROM (VALUES ('1990-12-10'), ('x')) AS t (v)"
    ).fetchall()
    text = "\n".join(row["QUERY PLAN"] for row in plan)
    assert "import_date" not in text
    assert "make_date" in text


NOW = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 2026-12-08 in Kiritimati, 12-06 at -12:00


def test_a_date_may_be_at_most_the_users_local_today_on_both_sides_of_the_date_line(db):
    rows = [
        ("K-1", "Pacific/Kiritimati", "2026-12-08"),  # its local today
        ("K-2", "Pacific/Kiritimati", "2026-12-09"),
        ("U-1", "UTC", "2026-12-07"),
        ("U-2", "UTC", "2026-12-08"),
        ("W-1", "Etc/GMT+12", "2026-12-06"),  # its local today
        ("W-2", "Etc/GMT+12", "2026-12-07"),
        ("O-1", "UTC", "1900-01-01"),
        ("O-2", "UTC", "1899-12-31"),
    ]
    staged = [row(external_id, zone, day) for external_id, zone, day in rows]

    with db.transaction():
        result = import_users(db, staged, NOW, clock_time(9, 0))

    assert result.created == 4
    refused = {(e["row"], e["field"]) for e in result.errors}
    assert refused == {
        (2, "birthday_date"),
        (4, "birthday_date"),
        (6, "birthday_date"),
        (8, "birthday_date"),
    }
    # The same rule for the other date.
    anniversary = [(*row("A-1", "Etc/GMT+12", "1990-01-01")[:6], "2026-12-07", *[None] * 3)]
    with db.transaction():
        result = import_users(db, anniversary, NOW, clock_time(9, 0))
    assert [(e["row"], e["field"]) for e in result.errors] == [(1, "anniversary_date")]


def row(external_id: str, zone: str, birthday: str) -> tuple[str | None, ...]:
    values = {
        "external_id": external_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"{external_id.lower()}@example.com",
        "timezone": zone,
        "birthday_date": birthday,
    }
    return tuple(values.get(name) for name in FIELDS)
