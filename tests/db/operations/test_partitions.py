"""Monthly partitions of message_logs: create_monthly_partitions(), drop_old_partitions()
and `flask db partitions`, each test on a private migrated database; and how both
behave behind a long transaction (bounded lock waits, traffic going on)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from api.resources import resources_of
from app import create_app
from db.transactions import transaction
from repositories import message_lifecycle
from tests import factories
from tests.delivery_stack import birth_date_celebrated_on


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(day: date) -> str:
    return f"message_logs_y{day:%Y}m{day:%m}"


def partitions(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        """
        SELECT c.relname AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'message_logs'::regclass
        """
    ).fetchall()
    return {row["name"] for row in rows}


def create_monthly(conn: psycopg.Connection, *args: Any) -> list[tuple[str, int]]:
    placeholders = ", ".join(["%s"] * len(args))
    rows = conn.execute(f"SELECT * FROM create_monthly_partitions({placeholders})", args).fetchall()
    return [(row["partition_name"], row["rows_moved"]) for row in rows]


def drop_old(conn: psycopg.Connection, *args: Any) -> list[tuple[str, date]]:
    placeholders = ", ".join(["%s"] * len(args))
    rows = conn.execute(f"SELECT * FROM drop_old_partitions({placeholders})", args).fetchall()
    return [(row["partition_name"], row["range_end"]) for row in rows]


def make_user(conn: psycopg.Connection, email: str = "ada@example.com") -> Any:
    """The id of a new user in UTC, the owner the messages below need."""
    user = factories.make_user(conn, email=email, timezone="UTC", birthday=date(1990, 3, 15))
    return user["id"]


def insert_message(conn: psycopg.Connection, user_id: Any, occasion_date: date) -> dict:
    """A message for `occasion_date`; the whole row plus the partition it sits in."""
    return conn.execute(
        """
        INSERT INTO message_logs (
            user_id, message_type, occasion_date, message_content, scheduled_send_time,
            status, retry_count, api_response_code, error_message, idempotency_key
        )
        VALUES (
            %(user)s, 'BIRTHDAY', %(day)s, %(content)s, %(send)s,
            'FAILED', 3, 503, 'provider down',
            message_idempotency_key(%(user)s, 'BIRTHDAY', %(day)s)
        )
        RETURNING *, tableoid::regclass::text AS partition
        """,
        {
            "user": user_id,
            "day": occasion_date,
            "content": f"Hey, it's your birthday on {occasion_date}",
            "send": datetime.combine(occasion_date, datetime.min.time(), UTC),
        },
    ).fetchone()


def rows_by_id(conn: psycopg.Connection, table: str) -> dict[int, dict]:
    rows = conn.execute(f"SELECT * FROM {table}").fetchall()
    return {row["id"]: row for row in rows}


@pytest.fixture
def db(fresh_db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a private migrated database."""
    with psycopg.connect(
        fresh_db_url, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC"
    ) as connection:
        yield connection


@pytest.fixture
def this_month(db: psycopg.Connection) -> date:
    """The first day of the server's current month (the migration's starting point)."""
    return db.execute("SELECT date_trunc('month', current_date)::date AS d").fetchone()["d"]


# --- create_monthly_partitions ------------------------------------------------------------


def test_migration_created_thirteen_monthly_partitions_from_this_month_plus_default(db, this_month):
    expected = {partition_name(add_months(this_month, i)) for i in range(13)}

    assert partitions(db) == expected | {"message_logs_default"}


def test_migrated_partitions_each_cover_exactly_one_month(db, this_month):
    rows = db.execute(
        """
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bounds
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'message_logs'::regclass
        """
    ).fetchall()
    bounds = {row["name"]: row["bounds"] for row in rows}

    assert bounds["message_logs_default"] == "DEFAULT"
    for i in range(13):
        start, end = add_months(this_month, i), add_months(this_month, i + 1)
        assert bounds[partition_name(start)] == f"FOR VALUES FROM ('{start}') TO ('{end}')"


def test_create_monthly_partitions_creates_the_month_of_from_date_and_twelve_after(db):
    before = partitions(db)

    created = create_monthly(db, 12, date(2031, 1, 15))

    expected = [partition_name(add_months(date(2031, 1, 1), i)) for i in range(13)]
    assert created == [(name, 0) for name in expected]
    assert partitions(db) - before == set(expected)


def test_create_monthly_partitions_a_second_time_creates_nothing(db):
    create_monthly(db, 12, date(2031, 1, 15))
    before = partitions(db)

    created = create_monthly(db, 12, date(2031, 1, 15))

    assert created == []
    assert partitions(db) == before


def test_create_monthly_partitions_skips_months_that_already_exist(db):
    create_monthly(db, 0, date(2031, 2, 1))

    created = create_monthly(db, 2, date(2031, 1, 1))

    assert created == [("message_logs_y2031m01", 0), ("message_logs_y2031m03", 0)]


def test_create_monthly_partitions_dry_run_reports_without_creating(db):
    before = partitions(db)

    reported = create_monthly(db, 2, date(2031, 1, 15), True)

    assert reported == [
        ("message_logs_y2031m01", 0),
        ("message_logs_y2031m02", 0),
        ("message_logs_y2031m03", 0),
    ]
    assert partitions(db) == before


def test_create_monthly_partitions_dry_run_counts_rows_without_moving_them(db):
    user = make_user(db)
    message = insert_message(db, user, date(2031, 3, 10))

    reported = create_monthly(db, 0, date(2031, 3, 1), True)

    assert reported == [("message_logs_y2031m03", 1)]
    assert set(rows_by_id(db, "message_logs_default")) == {message["id"]}


def test_create_monthly_partitions_rejects_negative_months_ahead(db):
    with pytest.raises(errors.RaiseException, match="months_ahead must be >= 0"):
        create_monthly(db, -1, date(2031, 1, 1))


# --- moving rows out of the DEFAULT partition ----------------------------------------------


@pytest.fixture
def parked(db) -> dict[str, list[dict]]:
    """Two March 2031 rows and one May 2031 row, all in the DEFAULT partition."""
    user = make_user(db)
    march = [insert_message(db, user, date(2031, 3, day)) for day in (1, 31)]
    may = [insert_message(db, user, date(2031, 5, 5))]
    assert {row["partition"] for row in march + may} == {"message_logs_default"}
    return {"march": march, "may": may}


def test_creating_a_partition_reports_the_rows_moved_out_of_default(db, parked):
    created = create_monthly(db, 0, date(2031, 3, 1))

    assert created == [("message_logs_y2031m03", 2)]


def test_moved_rows_keep_their_id_and_values(db, parked):
    create_monthly(db, 0, date(2031, 3, 1))

    moved = rows_by_id(db, "message_logs_y2031m03")
    expected = {
        row["id"]: {k: v for k, v in row.items() if k != "partition"} for row in parked["march"]
    }
    assert moved == expected


def test_moved_rows_are_no_longer_in_the_default_partition(db, parked):
    create_monthly(db, 0, date(2031, 3, 1))

    remaining = rows_by_id(db, "message_logs_default")
    assert not set(remaining) & {row["id"] for row in parked["march"]}


def test_rows_of_other_months_stay_in_the_default_partition(db, parked):
    create_monthly(db, 0, date(2031, 3, 1))

    assert set(rows_by_id(db, "message_logs_default")) == {row["id"] for row in parked["may"]}


def test_rows_of_several_months_are_moved_in_one_call(db, parked):
    created = create_monthly(db, 2, date(2031, 3, 1))

    assert created == [
        ("message_logs_y2031m03", 2),
        ("message_logs_y2031m04", 0),
        ("message_logs_y2031m05", 1),
    ]
    assert rows_by_id(db, "message_logs_default") == {}


def test_new_messages_for_the_month_go_to_the_new_partition_after_the_move(db, parked):
    create_monthly(db, 0, date(2031, 3, 1))

    message = insert_message(db, make_user(db, "grace@example.com"), date(2031, 3, 1))

    assert message["partition"] == "message_logs_y2031m03"
    assert message["id"] not in {row["id"] for row in parked["march"]}


# --- drop_old_partitions ------------------------------------------------------------------


@pytest.fixture
def year_2020(db) -> set[str]:
    """Partitions for every month of 2020."""
    create_monthly(db, 11, date(2020, 1, 1))
    return {partition_name(date(2020, month, 1)) for month in range(1, 13)}


def test_drop_old_partitions_drops_only_partitions_entirely_older_than_retention(db, year_2020):
    before = partitions(db)

    # as_of - 13 months = 2020-02-10: only January 2020 ends before it.
    dropped = drop_old(db, "13 months", date(2021, 3, 10))

    assert dropped == [("message_logs_y2020m01", date(2020, 2, 1))]
    assert partitions(db) == before - {"message_logs_y2020m01"}


def test_drop_old_partitions_drops_a_partition_ending_exactly_at_the_cutoff(db, year_2020):
    # as_of - 13 months = 2020-02-01, the end of January's range (exclusive bound).
    dropped = drop_old(db, "13 months", date(2021, 3, 1))

    assert [name for name, _ in dropped] == ["message_logs_y2020m01"]


def test_drop_old_partitions_returns_the_dropped_partitions_oldest_first(db, year_2020):
    dropped = drop_old(db, "13 months", date(2021, 6, 15))

    assert dropped == [
        ("message_logs_y2020m01", date(2020, 2, 1)),
        ("message_logs_y2020m02", date(2020, 3, 1)),
        ("message_logs_y2020m03", date(2020, 4, 1)),
        ("message_logs_y2020m04", date(2020, 5, 1)),
    ]


def test_drop_old_partitions_never_drops_the_partition_of_the_as_of_month(db, year_2020):
    drop_old(db, "1 month", date(2020, 6, 30))

    remaining = partitions(db)
    assert "message_logs_y2020m06" in remaining
    assert "message_logs_y2020m05" in remaining
    assert "message_logs_y2020m04" not in remaining


def test_drop_old_partitions_never_drops_the_default_partition(db, year_2020):
    message = insert_message(db, make_user(db), date(2019, 7, 4))

    dropped = drop_old(db, "1 month", date(2099, 1, 1))

    assert "message_logs_default" not in {name for name, _ in dropped}
    assert partitions(db) == {"message_logs_default"}
    assert set(rows_by_id(db, "message_logs_default")) == {message["id"]}


def test_drop_old_partitions_dry_run_drops_nothing(db, year_2020):
    before = partitions(db)

    reported = drop_old(db, "13 months", date(2021, 6, 15), True)

    assert len(reported) == 4
    assert partitions(db) == before


def test_drop_old_partitions_deletes_the_messages_of_dropped_months_only(db, year_2020):
    user = make_user(db)
    insert_message(db, user, date(2020, 1, 20))
    kept = insert_message(db, user, date(2020, 2, 20))

    drop_old(db, "13 months", date(2021, 3, 10))

    assert set(rows_by_id(db, "message_logs")) == {kept["id"]}


@pytest.mark.parametrize("retain", ["29 days", "4 weeks", "0 months", "-13 months"])
def test_drop_old_partitions_rejects_a_retention_under_one_month(db, year_2020, retain):
    before = partitions(db)

    with pytest.raises(errors.RaiseException, match="retain must be at least one month"):
        drop_old(db, retain, date(2021, 6, 15))

    assert partitions(db) == before


def test_drop_old_partitions_works_whatever_the_session_datestyle(db, year_2020):
    db.execute("SET DateStyle = 'SQL, DMY'")

    dropped = drop_old(db, "13 months", date(2021, 3, 10))

    assert [name for name, _ in dropped] == ["message_logs_y2020m01"]


def test_create_monthly_partitions_works_whatever_the_session_datestyle(db):
    db.execute("SET DateStyle = 'German'")

    created = db.execute(
        "SELECT partition_name FROM create_monthly_partitions(0, '2033-02-10')"
    ).fetchall()

    db.execute("SET DateStyle = 'ISO'")
    bounds = db.execute(
        "SELECT pg_get_expr(relpartbound, oid) AS bounds FROM pg_class"
        " WHERE relname = 'message_logs_y2033m02'"
    ).fetchone()
    assert [row["partition_name"] for row in created] == ["message_logs_y2033m02"]
    assert bounds["bounds"] == "FOR VALUES FROM ('2033-02-01') TO ('2033-03-01')"


# --- flask db partitions ------------------------------------------------------------------


@pytest.fixture
def cli(fresh_db_url: str):
    app = create_app({"DATABASE_URL": fresh_db_url, "TESTING": True})
    try:
        yield app.test_cli_runner()
    finally:
        resources_of(app).pool.close()


def test_cli_partitions_dry_run_exits_zero_and_changes_nothing(db, cli, year_2020):
    today = date.today()
    before = partitions(db)

    result = cli.invoke(args=["db", "partitions", "--dry-run", "--ahead", "14"])

    assert result.exit_code == 0, result.output
    assert f"would create {partition_name(add_months(today, 13))}" in result.output
    assert "would drop message_logs_y2020m01" in result.output
    assert partitions(db) == before


def test_cli_partitions_ahead_14_creates_the_two_missing_future_partitions(db, cli):
    today = date.today()
    before = partitions(db)

    result = cli.invoke(args=["db", "partitions", "--ahead", "14"])

    assert result.exit_code == 0, result.output
    assert partitions(db) - before == {
        partition_name(add_months(today, 13)),
        partition_name(add_months(today, 14)),
    }
    assert before <= partitions(db)


# --- behind a long transaction: bounded lock waits, traffic goes on -----------------------

LOCK_TIMEOUT = 2.0  # the functions' own lock_timeout when the caller sets none
SLACK = 15.0  # a busy 2-core machine: generous, and still far from "until the reader ends"


@contextmanager
def long_reader(url: str, where: str = "true") -> Iterator[psycopg.Connection]:
    """A transaction that has read message_logs (its locks held) until the block ends."""
    with psycopg.connect(url, row_factory=dict_row) as reader:
        reader.execute(f"SELECT count(*) FROM message_logs WHERE {where}")
        try:
            yield reader
        finally:
            reader.rollback()


def wait_for_lock_wait(conn: psycopg.Connection, query_part: str) -> None:
    """Until a backend running `query_part` waits for a lock (bounded)."""
    deadline = time.monotonic() + SLACK
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{query_part}%",),
        ).fetchone()
        if row["n"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing running {query_part!r} waited for a lock")


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        outcome: Any = call()
    except psycopg.Error as error:
        outcome = error
    return time.monotonic() - started, outcome


def test_creating_a_partition_behind_a_long_reader_gives_up_after_the_lock_timeout(
    db, fresh_db_url
):
    with long_reader(fresh_db_url):
        waited, outcome = timed(lambda: create_monthly(db, 0, date(2031, 3, 1)))

    assert isinstance(outcome, errors.LockNotAvailable)
    assert LOCK_TIMEOUT * 0.9 <= waited < LOCK_TIMEOUT + SLACK
    assert "message_logs_y2031m03" not in partitions(db)


def test_dropping_a_partition_behind_a_long_reader_gives_up_after_the_lock_timeout(
    db, fresh_db_url, year_2020
):
    with long_reader(fresh_db_url):
        waited, outcome = timed(lambda: drop_old(db, "13 months", date(2021, 3, 10)))

    assert isinstance(outcome, errors.LockNotAvailable)
    assert waited < LOCK_TIMEOUT + SLACK
    assert "message_logs_y2020m01" in partitions(db)


def test_a_caller_lock_timeout_is_kept_and_restored_afterwards(fresh_db_url):
    with psycopg.connect(fresh_db_url, row_factory=dict_row) as conn:
        conn.execute("SET LOCAL lock_timeout = '7s'")
        conn.execute("SELECT * FROM create_monthly_partitions(0, '2031-03-01')")
        after = conn.execute("SELECT current_setting('lock_timeout') AS t").fetchone()["t"]
        conn.rollback()
        conn.execute("SELECT * FROM create_monthly_partitions(0, '2031-03-01')")
        unset = conn.execute("SELECT current_setting('lock_timeout') AS t").fetchone()["t"]

    assert (after, unset) == ("7s", "0")


def test_a_partition_is_attached_while_a_long_reader_of_another_month_runs(db, fresh_db_url):
    # The reader's bounds prune every partition but this month's, DEFAULT included, and
    # ATTACH needs only SHARE UPDATE EXCLUSIVE on message_logs: no conflict, no wait.
    today = date.today()
    month = f"occasion_date >= '{today:%Y-%m}-01' AND occasion_date < '{add_months(today, 1)}'"
    with long_reader(fresh_db_url, where=month):
        waited, outcome = timed(lambda: create_monthly(db, 0, date(2031, 3, 1)))
        attached = partitions(db)

    assert outcome == [("message_logs_y2031m03", 0)]
    assert "message_logs_y2031m03" in attached
    assert waited < LOCK_TIMEOUT


def test_sends_and_api_reads_go_on_while_maintenance_waits_behind_a_long_reader(db, fresh_db_url):
    user = make_user(db)
    today = date.today()
    db.execute(  # due today, so the send goes through rather than being cancelled
        "UPDATE users SET birthday_date = %s WHERE id = %s",
        (birth_date_celebrated_on(today, 1992), user),
    )
    queued = db.execute(
        """
        INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                                  scheduled_send_time, status, idempotency_key)
        VALUES (%(u)s, 'BIRTHDAY', %(d)s, 'Hey', now(), 'QUEUED',
                message_idempotency_key(%(u)s, 'BIRTHDAY', %(d)s))
        RETURNING id
        """,
        {"u": user, "d": today},
    ).fetchone()["id"]
    app = create_app({"DATABASE_URL": fresh_db_url, "TESTING": True})
    pool = resources_of(app).pool
    pool.open(wait=True, timeout=10)

    def send() -> str:
        now = datetime.now(UTC)
        with transaction(pool) as conn:
            [taken] = message_lifecycle.start_sending_many(
                conn, [(queued, today)], now, timedelta(minutes=2), timedelta(hours=1)
            )
            assert taken["status"] == "SENDING"
            sent = message_lifecycle.SentAnswer(
                queued, today, taken["locked_until"], now, 200, "ok"
            )
            message_lifecycle.record_sent_many(conn, [sent])
        with transaction(pool) as conn:
            return conn.execute(
                "SELECT status FROM message_logs WHERE id = %s", (queued,)
            ).fetchone()["status"]

    def read(path: str) -> int:
        return app.test_client().get(path).status_code

    def maintain() -> list[tuple[str, int]]:
        with psycopg.connect(fresh_db_url, autocommit=True, row_factory=dict_row) as conn:
            return create_monthly(conn, 0, date(2031, 3, 1))

    try:
        with long_reader(fresh_db_url), ThreadPoolExecutor(4) as executor:
            maintenance = executor.submit(timed, maintain)
            wait_for_lock_wait(db, "create_monthly_partitions")
            # While maintenance waits for its lock and the reader still holds its own:
            traffic = [
                executor.submit(timed, send),
                executor.submit(timed, lambda: read("/messages")),
                executor.submit(timed, lambda: read(f"/users/{user}/messages")),
            ]
            results = [future.result(timeout=LOCK_TIMEOUT + SLACK) for future in traffic]
            gave_up_after, outcome = maintenance.result(timeout=LOCK_TIMEOUT + SLACK)
        retried = create_monthly(db, 0, date(2031, 3, 1))  # the reader is gone
    finally:
        pool.close()

    assert [outcome for _, outcome in results] == ["SENT", 200, 200]
    assert all(waited < LOCK_TIMEOUT + SLACK for waited, _ in results)
    assert isinstance(outcome, errors.LockNotAvailable)
    assert gave_up_after < LOCK_TIMEOUT + SLACK
    assert retried == [("message_logs_y2031m03", 0)]
