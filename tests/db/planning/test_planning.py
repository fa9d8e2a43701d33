"""Planning each user's next greeting (set-based SQL), and following user changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from api.resources import resources_of
from app import create_app
from planning import all_users as batch_planning
from planning import for_users as planning
from repositories import occurrences, planned_changes, planning_state, users
from tests.factories import make_user, messages_of
from users import directory as users_service

NINE = time(9, 0)


def rows(conn: psycopg.Connection, user_id, status: str | None = None) -> list[dict]:
    found = messages_of(conn, user_id)
    return [row for row in found if status is None or row["status"] == status]


def local(zone: str, *args: int) -> datetime:
    """An aware instant given as local wall-clock time in `zone`."""
    return datetime(*args, tzinfo=ZoneInfo(zone))


def at_nine(day: date, zone: str) -> datetime:
    return datetime.combine(day, NINE, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_a_user_gets_the_next_birthday_planned_at_nine_local(conn):
    user = make_user(conn, timezone="Asia/Kathmandu", birthday=date(1990, 12, 10))

    planned = planning.plan_user(conn, user["id"], local("Asia/Kathmandu", 2026, 11, 26, 12), NINE)

    [row] = rows(conn, user["id"])
    assert planned == 1
    assert (row["message_type"], row["occasion_date"]) == ("BIRTHDAY", date(2026, 12, 10))
    assert row["scheduled_send_time"] == datetime(2026, 12, 10, 3, 15, tzinfo=UTC)
    assert row["next_attempt_at"] == row["scheduled_send_time"]
    assert row["status"] == "SCHEDULED"
    assert row["message_content"] == "Hey, Ada Lovelace it's your birthday"
    assert row["idempotency_key"] == f"{user['id']}:BIRTHDAY:2026-12-10"


def test_birthday_and_anniversary_are_planned_separately(conn):
    user = make_user(conn, anniversary=date(2015, 6, 20))

    planning.plan_user(conn, user["id"], datetime(2026, 11, 26, tzinfo=UTC), NINE)

    planned = {(r["message_type"], r["occasion_date"]) for r in rows(conn, user["id"])}
    assert planned == {("BIRTHDAY", date(2026, 12, 10)), ("ANNIVERSARY", date(2027, 6, 20))}


def test_a_user_created_at_15h_local_on_the_birthday_still_gets_today(conn):
    user = make_user(conn, timezone="America/New_York", birthday=date(1990, 11, 26))
    now = local("America/New_York", 2026, 11, 26, 15)

    planning.plan_user(conn, user["id"], now, NINE)

    [row] = rows(conn, user["id"])
    assert row["occasion_date"] == date(2026, 11, 26)
    assert row["scheduled_send_time"] == at_nine(date(2026, 11, 26), "America/New_York")
    assert row["scheduled_send_time"] < now  # due at once


def test_a_user_created_the_day_after_gets_next_year(conn):
    user = make_user(conn, timezone="America/New_York", birthday=date(1990, 11, 25))

    planning.plan_user(conn, user["id"], local("America/New_York", 2026, 11, 26, 8), NINE)

    assert [r["occasion_date"] for r in rows(conn, user["id"])] == [date(2027, 11, 25)]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2027, 1, 10, tzinfo=UTC), date(2027, 2, 28)),
        (datetime(2028, 1, 10, tzinfo=UTC), date(2028, 2, 29)),
        (datetime(2027, 3, 1, 12, tzinfo=UTC), date(2028, 2, 29)),
    ],
)
def test_feb_29_falls_on_feb_28_in_non_leap_years(conn, now, expected):
    user = make_user(conn, birthday=date(2000, 2, 29))

    planning.plan_user(conn, user["id"], now, NINE)

    assert [r["occasion_date"] for r in rows(conn, user["id"])] == [expected]


def test_the_users_local_date_decides_on_both_sides_of_the_date_line(conn):
    # 2027-03-04 11:00 UTC: already Mar 5 (01:00) in Kiritimati, still Mar 4 (00:00) in Pago Pago.
    now = datetime(2027, 3, 4, 11, 0, tzinfo=UTC)
    kiritimati = make_user(conn, timezone="Pacific/Kiritimati", birthday=date(1990, 3, 4))
    pago_pago = make_user(conn, timezone="Pacific/Pago_Pago", birthday=date(1990, 3, 4))

    occurrences.plan_next_occurrences(conn, now, NINE)

    [k] = rows(conn, kiritimati["id"])
    [p] = rows(conn, pago_pago["id"])
    assert k["occasion_date"] == date(2028, 3, 4)
    assert p["occasion_date"] == date(2027, 3, 4)
    assert k["scheduled_send_time"] == datetime(2028, 3, 3, 19, 0, tzinfo=UTC)  # +14:00
    assert p["scheduled_send_time"] == datetime(2027, 3, 4, 20, 0, tzinfo=UTC)  # -11:00


def test_a_nine_oclock_inside_a_dst_gap_moves_forward(conn):
    user = make_user(conn, timezone="America/New_York", birthday=date(1990, 3, 8))

    planning.plan_user(conn, user["id"], datetime(2026, 3, 1, tzinfo=UTC), time(2, 30))

    [row] = rows(conn, user["id"])
    assert row["scheduled_send_time"] == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT


def test_planning_twice_plans_nothing_new(conn):
    user = make_user(conn, anniversary=date(2015, 6, 20))
    now = datetime(2026, 11, 26, tzinfo=UTC)

    first = occurrences.plan_next_occurrences(conn, now, NINE)
    second = occurrences.plan_next_occurrences(conn, now, NINE)

    assert (first, second) == (2, 0)
    assert len(rows(conn, user["id"])) == 2


def test_after_this_years_greeting_is_sent_next_year_is_planned(conn):
    user = make_user(conn, birthday=date(1990, 11, 26))
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)
    conn.execute("UPDATE message_logs SET status = 'SENT' WHERE user_id = %s", (user["id"],))

    planning.plan_user(conn, user["id"], now, NINE)

    assert [r["occasion_date"] for r in rows(conn, user["id"], "SCHEDULED")] == [date(2027, 11, 26)]


def test_a_timezone_change_recomputes_the_send_time_of_the_same_row(conn):
    user = make_user(conn, timezone="Europe/London")
    now = datetime(2026, 11, 26, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)
    [before] = rows(conn, user["id"])

    users_service.patch_user(conn, user["id"], {"timezone": "Asia/Tokyo"}, now, NINE)

    [after] = rows(conn, user["id"])
    assert after["id"] == before["id"]
    assert after["idempotency_key"] == before["idempotency_key"]
    assert after["status"] == "SCHEDULED"
    assert after["scheduled_send_time"] == datetime(2026, 12, 10, 0, 0, tzinfo=UTC)


def test_a_birthday_change_cancels_the_old_date_and_plans_the_new(conn):
    user = make_user(conn)
    now = datetime(2026, 11, 26, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)

    users_service.patch_user(conn, user["id"], {"birthday_date": date(1990, 12, 20)}, now, NINE)

    states = {(r["occasion_date"], r["status"]) for r in rows(conn, user["id"])}
    assert states == {(date(2026, 12, 10), "CANCELLED"), (date(2026, 12, 20), "SCHEDULED")}


def test_a_birthday_changed_away_and_back_gets_the_original_date_again(conn):
    user = make_user(conn)
    now = datetime(2026, 11, 26, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)
    [original] = rows(conn, user["id"])

    users_service.patch_user(conn, user["id"], {"birthday_date": date(1990, 12, 20)}, now, NINE)
    users_service.patch_user(conn, user["id"], {"birthday_date": date(1990, 12, 10)}, now, NINE)

    scheduled = rows(conn, user["id"], "SCHEDULED")
    assert [(r["id"], r["occasion_date"]) for r in scheduled] == [
        (original["id"], date(2026, 12, 10))
    ]
    assert [r["occasion_date"] for r in rows(conn, user["id"], "CANCELLED")] == [date(2026, 12, 20)]


def test_a_name_change_updates_the_greeting_text(conn):
    user = make_user(conn)
    now = datetime(2026, 11, 26, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)

    users_service.patch_user(conn, user["id"], {"first_name": "Augusta"}, now, NINE)

    [row] = rows(conn, user["id"], "SCHEDULED")
    assert row["message_content"] == "Hey, Augusta Lovelace it's your birthday"


def test_an_unrelated_change_leaves_the_plan_alone(conn):
    user = make_user(conn)
    now = datetime(2026, 11, 26, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)

    users_service.patch_user(conn, user["id"], {"location_city": "Paris"}, now, NINE)

    assert [r["status"] for r in rows(conn, user["id"])] == ["SCHEDULED"]


def test_removing_the_anniversary_cancels_its_greeting(conn):
    user = make_user(conn, anniversary=date(2015, 6, 20))
    now = datetime(2026, 11, 26, tzinfo=UTC)
    planning.plan_user(conn, user["id"], now, NINE)

    users_service.patch_user(conn, user["id"], {"anniversary_date": None}, now, NINE)

    states = {(r["message_type"], r["status"]) for r in rows(conn, user["id"])}
    assert states == {("BIRTHDAY", "SCHEDULED"), ("ANNIVERSARY", "CANCELLED")}


def test_deleting_a_user_cancels_every_pending_greeting(conn):
    user = make_user(conn, anniversary=date(2015, 6, 20))
    planning.plan_user(conn, user["id"], datetime(2026, 11, 26, tzinfo=UTC), NINE)

    users_service.delete_user(conn, user["id"])

    assert {r["status"] for r in rows(conn, user["id"])} == {"CANCELLED"}
    assert occurrences.plan_next_occurrences(conn, datetime(2026, 11, 27, tzinfo=UTC), NINE) == 0


def test_a_message_in_a_workers_hands_is_not_cancelled(conn):
    user = make_user(conn)
    planning.plan_user(conn, user["id"], datetime(2026, 11, 26, tzinfo=UTC), NINE)
    conn.execute("UPDATE message_logs SET status = 'SENDING' WHERE user_id = %s", (user["id"],))

    users_service.delete_user(conn, user["id"])

    assert [r["status"] for r in rows(conn, user["id"])] == ["SENDING"]


def test_plan_all_plans_every_live_user_once_across_batches(db_url):
    pool_app = create_app({"DATABASE_URL": db_url})
    pool = resources_of(pool_app).pool
    pool.open(wait=True)
    try:
        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            ids = [make_user(conn, anniversary=date(2010, 5, 5))["id"] for _ in range(23)]
            users.soft_delete(conn, ids[0])
            conn.commit()

        planned = batch_planning.plan_all(
            pool, datetime(2026, 11, 26, tzinfo=UTC), NINE, batch_size=5
        )
        again = batch_planning.plan_all(
            pool, datetime(2026, 11, 26, tzinfo=UTC), NINE, batch_size=5
        )

        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            per_user = conn.execute(
                "SELECT user_id, count(*) AS n FROM message_logs GROUP BY user_id"
            ).fetchall()
    finally:
        pool.close()
    assert (planned, again) == (44, 0)
    assert {row["user_id"] for row in per_user} == set(ids[1:])
    assert {row["n"] for row in per_user} == {2}


def test_a_user_created_through_the_api_is_planned_in_the_same_request(client, db_url):
    response = client.post(
        "/users",
        json={
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": "grace@example.com",
            "timezone": "America/New_York",
            "birthday_date": "1956-12-09",
        },
    )

    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        planned = messages_of(conn, response.get_json()["id"])
    assert response.status_code == 201
    assert [(r["message_type"], r["status"]) for r in planned] == [("BIRTHDAY", "SCHEDULED")]
    assert planned[0]["occasion_date"].month == 12 and planned[0]["occasion_date"].day == 9


def test_seeded_history_agrees_with_the_sql_planner(conn):
    from seed.loader import seed_database

    now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    seed_database(conn, count=300, random_seed=11, now=now, send_time=NINE)

    assert occurrences.plan_next_occurrences(conn, now, NINE) == 0


def test_a_send_time_change_moves_scheduled_greetings_in_place(db_url):
    pool_app = create_app({"DATABASE_URL": db_url})
    pool = resources_of(pool_app).pool
    pool.open(wait=True)
    now = datetime(2026, 11, 26, tzinfo=UTC)
    try:
        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            user = make_user(conn, timezone="Asia/Kathmandu")
            planning.plan_user(conn, user["id"], now, NINE)
            conn.commit()
            [before] = rows(conn, user["id"])

        batch_planning.plan_all(pool, now, time(7, 30))

        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            [after] = rows(conn, user["id"])
    finally:
        pool.close()
    assert after["id"] == before["id"]
    assert before["scheduled_send_time"] == datetime(2026, 12, 10, 3, 15, tzinfo=UTC)
    assert after["scheduled_send_time"] == datetime(2026, 12, 10, 1, 45, tzinfo=UTC)
    assert after["next_attempt_at"] == after["scheduled_send_time"]


def test_retiming_leaves_rows_already_at_the_right_time_untouched(conn):
    user = make_user(conn)
    planning.plan_user(conn, user["id"], datetime(2026, 11, 26, tzinfo=UTC), NINE)

    assert planned_changes.retime_scheduled(conn, NINE) == 0
    assert planned_changes.retime_scheduled(conn, time(10, 0)) == 1


def _plan_all(db_url: str, send_time: time, batch_size: int = 5) -> int:
    pool_app = create_app({"DATABASE_URL": db_url})
    pool = resources_of(pool_app).pool
    pool.open(wait=True)
    try:
        return batch_planning.plan_all(
            pool, datetime(2026, 11, 26, tzinfo=UTC), send_time, batch_size=batch_size
        )
    finally:
        pool.close()


def test_a_user_whose_greetings_went_missing_is_planned_again_alone(db_url):
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        ids = [make_user(conn, anniversary=date(2010, 5, 5))["id"] for _ in range(12)]
        conn.commit()
    assert _plan_all(db_url, NINE) == 24  # more users than a batch: planned by id range
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        conn.execute("DELETE FROM message_logs WHERE user_id = %s", (ids[3],))
        conn.commit()
        before = conn.execute("SELECT id, user_id FROM message_logs ORDER BY id").fetchall()

    assert _plan_all(db_url, NINE) == 2

    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        after = conn.execute("SELECT id, user_id FROM message_logs ORDER BY id").fetchall()
    assert after[: len(before)] == before  # the others untouched
    assert {row["user_id"] for row in after[len(before) :]} == {ids[3]}


def test_planning_retimes_greetings_only_when_send_time_changed_since_its_last_run(db_url):
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        user = make_user(conn, timezone="Asia/Kathmandu")
        conn.commit()
    _plan_all(db_url, NINE)
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        assert planning_state.retimed_to(conn) == NINE
        # Off SEND_TIME by hand: the daily zone refresh would put it back, not planning
        conn.execute("UPDATE message_logs SET scheduled_send_time = scheduled_send_time + '1h'")
        conn.commit()
        [off] = rows(conn, user["id"])

    _plan_all(db_url, NINE)
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        [unchanged] = rows(conn, user["id"])
    _plan_all(db_url, time(7, 30))
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        [moved] = rows(conn, user["id"])
        recorded = planning_state.retimed_to(conn)

    assert unchanged["scheduled_send_time"] == off["scheduled_send_time"]
    assert moved["scheduled_send_time"] == datetime(2026, 12, 10, 1, 45, tzinfo=UTC)
    assert recorded == time(7, 30)


def _manual_analyses_of_users(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        query = "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'users'"
        return conn.execute(query).fetchone()[0]


def test_a_run_that_plans_many_rows_refreshes_the_statistics_a_small_one_does_not(
    db_url, monkeypatch
):
    monkeypatch.setattr(batch_planning, "STATISTICS_REFRESH_AFTER", 6)
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        for _ in range(2):
            make_user(conn, anniversary=date(2010, 5, 5))
        conn.commit()
    before = _manual_analyses_of_users(db_url)
    assert _plan_all(db_url, NINE) == 4
    after_small_run = _manual_analyses_of_users(db_url)

    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        for _ in range(3):
            make_user(conn, anniversary=date(2010, 5, 5))
        conn.commit()
    assert _plan_all(db_url, NINE) == 6
    after_large_run = _manual_analyses_of_users(db_url)

    assert after_small_run == before
    assert after_large_run == before + 1
