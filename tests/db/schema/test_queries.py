"""db/queries.py helpers and db/pool.py pools, on the real PostgreSQL."""

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg import sql

from config import Settings
from db.pool import create_pool
from db.queries import (
    NoRowFound,
    copy_rows,
    execute,
    fetch_all,
    fetch_one,
    fetch_optional,
    fetch_scalar,
)
from db.transactions import transaction
from schema import admin

USER_COLUMNS = ("id", "first_name", "last_name", "email", "timezone", "birthday_date")
NASTY = "Robert'); DROP TABLE users; -- \"quoted\" O'Brien \\ %s %(x)s"


class Boom(Exception):
    pass


def insert_user(conn, first_name="Ada", last_name="Lovelace", email=None) -> uuid.UUID:
    return fetch_scalar(
        conn,
        """
        INSERT INTO users (first_name, last_name, email, timezone, birthday_date)
        VALUES (%(first_name)s, %(last_name)s, %(email)s, 'UTC', %(birthday)s)
        RETURNING id
        """,
        {
            "first_name": first_name,
            "last_name": last_name,
            "email": email or f"{uuid.uuid4().hex}@example.com",
            "birthday": date(1990, 12, 10),
        },
    )


def count_users(url: str) -> int:
    """Seen from a separate connection: only committed rows."""
    with psycopg.connect(url) as other:
        return other.execute("SELECT count(*) FROM users").fetchone()[0]


def make_pool(url: str, sql_log: bool = False, max_size: int = 2):
    settings = Settings.from_env(
        {}, database_url=url, sql_log=sql_log, db_pool_min_size=1, db_pool_max_size=max_size
    )
    return create_pool(settings, "test")


@pytest.fixture
def pool(db_url) -> Iterator:
    pool = make_pool(db_url)
    pool.open(wait=True)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def logging_pool(db_url) -> Iterator:
    pool = make_pool(db_url, sql_log=True)
    pool.open(wait=True)
    try:
        yield pool
    finally:
        pool.close()


# fetch_* and execute


def test_fetch_all_returns_every_row_as_a_dict(conn):
    rows = fetch_all(conn, "SELECT g AS n, g * 10 AS tens FROM generate_series(1, 3) g ORDER BY g")

    assert rows == [{"n": 1, "tens": 10}, {"n": 2, "tens": 20}, {"n": 3, "tens": 30}]


def test_fetch_all_returns_an_empty_list_when_no_row_matches(conn):
    assert fetch_all(conn, "SELECT id FROM users") == []


def test_fetch_one_returns_the_first_row_as_a_dict(conn):
    row = fetch_one(conn, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y' ORDER BY a")

    assert row == {"a": 1, "b": "x"}


def test_fetch_one_raises_no_row_found_when_there_is_no_row(conn):
    with pytest.raises(NoRowFound):
        fetch_one(conn, "SELECT id FROM users WHERE false")


def test_no_row_found_is_a_lookup_error():
    assert issubclass(NoRowFound, LookupError)


def test_fetch_optional_returns_the_row_when_there_is_one(conn):
    assert fetch_optional(conn, "SELECT 42 AS answer") == {"answer": 42}


def test_fetch_optional_returns_none_when_there_is_no_row(conn):
    assert fetch_optional(conn, "SELECT id FROM users") is None


def test_fetch_scalar_returns_the_first_column_of_the_first_row(conn):
    value = fetch_scalar(conn, "SELECT 'first' AS a, 'second' AS b UNION ALL SELECT 'x', 'y'")

    assert value == "first"


def test_fetch_scalar_returns_none_when_there_is_no_row(conn):
    assert fetch_scalar(conn, "SELECT id FROM users") is None


def test_execute_returns_the_number_of_rows_touched(conn):
    for name in ("Ada", "Alan", "Grace"):
        insert_user(conn, first_name=name)

    touched = execute(
        conn, "UPDATE users SET last_name = 'X' WHERE first_name <> %(name)s", {"name": "Ada"}
    )

    assert touched == 2


def test_named_parameters_are_bound_by_name(conn):
    row = fetch_one(
        conn,
        "SELECT %(b)s::int AS b, %(a)s::text AS a, %(b)s::int + 1 AS b_again",
        {"a": "alpha", "b": 7},
    )

    assert row == {"b": 7, "a": "alpha", "b_again": 8}


def test_a_value_with_quotes_and_sql_is_stored_verbatim(conn):
    user_id = insert_user(conn, first_name=NASTY)

    stored = fetch_scalar(conn, "SELECT first_name FROM users WHERE id = %(id)s", {"id": user_id})

    assert stored == NASTY


def test_a_value_with_sql_in_it_does_no_harm(conn):
    insert_user(conn, first_name=NASTY)
    insert_user(conn, last_name=NASTY)

    assert fetch_scalar(conn, "SELECT to_regclass('users') IS NOT NULL") is True
    assert fetch_scalar(conn, "SELECT count(*) FROM users") == 2


def test_a_value_with_sql_in_it_matches_only_itself_in_a_where_clause(conn):
    insert_user(conn, first_name="Ada")

    found = fetch_all(
        conn, "SELECT id FROM users WHERE first_name = %(name)s", {"name": "' OR ''='"}
    )

    assert found == []


# transaction(pool)


def test_transaction_commits_on_success(pool, db_url):
    with transaction(pool) as tx:
        insert_user(tx, first_name="Ada")
        insert_user(tx, first_name="Alan")

    assert count_users(db_url) == 2


def test_transaction_rolls_back_everything_on_an_exception(pool, db_url):
    with pytest.raises(Boom), transaction(pool) as tx:
        insert_user(tx, first_name="Ada")
        insert_user(tx, first_name="Alan")
        raise Boom

    assert count_users(db_url) == 0


def test_transaction_does_not_commit_before_the_block_ends(pool, db_url):
    with transaction(pool) as tx:
        insert_user(tx)
        seen_inside = count_users(db_url)

    assert seen_inside == 0


def test_a_rolled_back_transaction_leaves_the_pooled_connection_usable(pool, db_url):
    with pytest.raises(psycopg.errors.UndefinedTable), transaction(pool) as tx:
        insert_user(tx)
        tx.execute("SELECT * FROM no_such_table")

    with transaction(pool) as tx:
        insert_user(tx)

    assert count_users(db_url) == 1


# copy_rows


def user_rows(count: int) -> list[tuple]:
    return [
        (
            uuid.UUID(int=n + 1, version=4),
            f"First{n}",
            NASTY if n == 0 else f"Last{n}",
            f"user{n}@example.com",
            "Asia/Kathmandu",
            date(1990, 1, 1 + n),
        )
        for n in range(count)
    ]


def stored_users(conn) -> list[tuple]:
    rows = fetch_all(
        conn,
        sql.SQL("SELECT {} FROM users ORDER BY email").format(
            sql.SQL(", ").join(map(sql.Identifier, USER_COLUMNS))
        ),
    )
    return [tuple(row[name] for name in USER_COLUMNS) for row in rows]


def test_copy_rows_in_text_mode_loads_every_row(conn):
    rows = user_rows(5)

    count = copy_rows(conn, "users", USER_COLUMNS, rows)

    assert count == 5
    assert stored_users(conn) == rows


def test_copy_rows_in_binary_mode_loads_every_row(conn):
    rows = user_rows(5)
    types = ("uuid", "text", "text", "text", "text", "date")

    count = copy_rows(conn, "users", USER_COLUMNS, rows, types=types)

    assert count == 5
    assert stored_users(conn) == rows


def test_copy_rows_in_binary_mode_loads_timestamps_and_nulls(conn):
    created = datetime(2026, 3, 4, 11, 0, 0, 123456, tzinfo=UTC)
    columns = (*USER_COLUMNS, "anniversary_date", "created_at")
    rows = [(*user_rows(1)[0], None, created)]
    types = ("uuid", "text", "text", "text", "text", "date", "date", "timestamptz")

    copy_rows(conn, "users", columns, rows, types=types)

    row = fetch_one(conn, "SELECT anniversary_date, created_at FROM users")
    assert row == {"anniversary_date": None, "created_at": created}


def test_copy_rows_of_nothing_loads_nothing(conn):
    assert copy_rows(conn, "users", USER_COLUMNS, iter(())) == 0
    assert fetch_scalar(conn, "SELECT count(*) FROM users") == 0


# Pools


def sql_messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "sql"]


def test_a_logging_pool_logs_each_statement_with_its_duration(logging_pool, caplog):
    caplog.set_level(logging.INFO, logger="sql")

    with logging_pool.connection() as conn:
        conn.execute("SELECT 1 AS first_statement")
        conn.execute("SELECT\n    2   AS second_statement")

    messages = sql_messages(caplog)
    assert any(re.fullmatch(r"\d+\.\d\d ms  SELECT 1 AS first_statement", m) for m in messages)
    assert any(re.fullmatch(r"\d+\.\d\d ms  SELECT 2 AS second_statement", m) for m in messages)


def test_a_logging_pool_logs_composed_statements_as_text(logging_pool, caplog):
    caplog.set_level(logging.INFO, logger="sql")
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("users"))

    with logging_pool.connection() as conn:
        conn.execute(query)

    assert any(m.endswith('ms  SELECT count(*) FROM "users"') for m in sql_messages(caplog))


def test_a_logging_pool_logs_a_statement_that_fails(logging_pool, caplog):
    caplog.set_level(logging.INFO, logger="sql")

    with pytest.raises(psycopg.errors.UndefinedTable), logging_pool.connection() as conn:
        conn.execute("SELECT * FROM no_such_table")

    assert any(m.endswith("ms  SELECT * FROM no_such_table") for m in sql_messages(caplog))


def test_a_pool_without_sql_log_does_not_log(pool, caplog):
    caplog.set_level(logging.INFO, logger="sql")

    with pool.connection() as conn:
        conn.execute("SELECT 1 AS quiet")

    assert sql_messages(caplog) == []


@pytest.fixture
def kathmandu_db_url(fresh_db_url) -> str:
    """A private database whose sessions default to +05:45 unless told otherwise."""
    with psycopg.connect(fresh_db_url, autocommit=True) as owner:
        owner.execute(
            sql.SQL("ALTER DATABASE {} SET TimeZone = 'Asia/Kathmandu'").format(
                sql.Identifier(admin.database_name(fresh_db_url))
            )
        )
    with psycopg.connect(fresh_db_url) as plain:
        assert plain.execute("SHOW TimeZone").fetchone()[0] == "Asia/Kathmandu"
    return fresh_db_url


def test_pool_sessions_run_in_utc_whatever_the_database_default(kathmandu_db_url):
    pool = make_pool(kathmandu_db_url)
    pool.open(wait=True)
    try:
        with pool.connection() as conn:
            zone = fetch_scalar(conn, "SHOW TimeZone")
    finally:
        pool.close()

    assert zone == "UTC"


def test_pool_sessions_return_aware_timestamps_in_utc(kathmandu_db_url):
    pool = make_pool(kathmandu_db_url)
    pool.open(wait=True)
    try:
        with pool.connection() as conn:
            value = fetch_scalar(conn, "SELECT timestamptz '2026-03-04 09:00+05:45'")
    finally:
        pool.close()

    assert value == datetime(2026, 3, 4, 3, 15, tzinfo=UTC)
    assert value.utcoffset().total_seconds() == 0


def test_pool_sessions_hand_back_dict_rows(pool):
    with pool.connection() as conn:
        row = conn.execute("SELECT 1 AS one, 'two' AS two").fetchone()

    assert row == {"one": 1, "two": "two"}


def test_a_logging_pool_also_hands_back_dict_rows(logging_pool):
    with logging_pool.connection() as conn:
        row = conn.execute("SELECT 1 AS one").fetchone()

    assert row == {"one": 1}


def _backend_pid(pool) -> int:
    with pool.connection() as conn:
        return fetch_scalar(conn, "SELECT pg_backend_pid()")


def _counting_checks(monkeypatch) -> list:
    """Record each time the pool's check runs its query (the real check still runs)."""
    from psycopg_pool import ConnectionPool

    checked = []
    real = ConnectionPool.check_connection

    def check(conn):
        checked.append(conn)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(check))
    return checked


@pytest.fixture
def one_connection_pool(db_url) -> Iterator:
    """A pool of exactly one connection: every checkout hands out the same one."""
    pool = make_pool(db_url, max_size=1)
    pool.open(wait=True)
    try:
        yield pool
    finally:
        pool.close()


def test_a_quiet_pooled_connection_is_handed_out_without_a_test_query(
    one_connection_pool, monkeypatch
):
    checked = _counting_checks(monkeypatch)
    first, second = _backend_pid(one_connection_pool), _backend_pid(one_connection_pool)
    assert first == second
    assert checked == []


def test_a_pooled_connection_whose_backend_ended_is_replaced_on_checkout(
    db_url, one_connection_pool, monkeypatch
):
    checked = _counting_checks(monkeypatch)
    ended = _backend_pid(one_connection_pool)
    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s, 5000)", (ended,))
    replacement = _backend_pid(one_connection_pool)  # no error: the dead one was not handed out
    assert replacement != ended
    assert len(checked) == 1
