"""Every CHECK, unique and foreign-key rule of the schema, against the real database.

Each rejected statement runs inside a savepoint (`violates`), so the test's transaction
stays usable; the `conn` fixture rolls everything back at the end.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

_emails = itertools.count(1)

# A month no partition is ever created for by the migration (it starts at "now").
PAST_DATE = date(2020, 3, 15)


def make_user(conn: psycopg.Connection, **overrides: Any) -> dict:
    """Insert a valid user, with `overrides` replacing the defaults; the row."""
    values: dict[str, Any] = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"user{next(_emails)}@example.com",
        "timezone": "UTC",
        "birthday_date": date(1990, 3, 15),
        "anniversary_date": None,
    }
    values.update(overrides)
    query = sql.SQL("INSERT INTO users ({}) VALUES ({}) RETURNING *").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(map(sql.Placeholder, values)),
    )
    return conn.execute(query, values).fetchone()


def idempotency_key(user_id: Any, message_type: str, occasion_date: date) -> str:
    return f"{user_id}:{message_type}:{occasion_date.isoformat()}"


def make_message(
    conn: psycopg.Connection, user_id: Any, table: str = "message_logs", **overrides: Any
) -> dict:
    """Insert a valid message for `user_id` into `table`; the row plus its partition."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "message_type": "BIRTHDAY",
        "occasion_date": PAST_DATE,
        "message_content": "Hey, Ada Lovelace it's your birthday",
        "scheduled_send_time": datetime(2020, 3, 15, 9, tzinfo=UTC),
    }
    values.update(overrides)
    values.setdefault(
        "idempotency_key",
        idempotency_key(values["user_id"], values["message_type"], values["occasion_date"]),
    )
    query = sql.SQL(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING *, tableoid::regclass::text AS partition"
    ).format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(map(sql.Placeholder, values)),
    )
    return conn.execute(query, values).fetchone()


@contextmanager
def violates(
    conn: psycopg.Connection, error: type[psycopg.Error], constraint: str | None = None
) -> Iterator[None]:
    """The block must fail with `error` (on `constraint`); rolled back to a savepoint."""
    with pytest.raises(error) as caught, conn.transaction():
        yield
    if constraint is not None:
        assert caught.value.diag.constraint_name == constraint


def root_index(conn: psycopg.Connection, index_name: str) -> str:
    """The partitioned-table index that `index_name` (a partition's index) belongs to."""
    row = conn.execute(
        """
        SELECT coalesce(parent.relname, child.relname) AS name
        FROM pg_class child
        LEFT JOIN pg_inherits i ON i.inhrelid = child.oid
        LEFT JOIN pg_class parent ON parent.oid = i.inhparent
        WHERE child.relname = %s AND child.relkind IN ('i', 'I')
        """,
        (index_name,),
    ).fetchone()
    assert row is not None, f"no index named {index_name}"
    return row["name"]


@contextmanager
def violates_occasion_key(conn: psycopg.Connection) -> Iterator[None]:
    """The block must be refused by message_logs_occasion_key (via a partition's index)."""
    with pytest.raises(errors.UniqueViolation) as caught, conn.transaction():
        yield
    assert root_index(conn, caught.value.diag.constraint_name) == "message_logs_occasion_key"


# --- users -----------------------------------------------------------------------------


def test_valid_user_is_stored_live_with_timestamps(conn):
    user = make_user(conn, first_name="Grace", email="grace@example.com")

    assert user["first_name"] == "Grace"
    assert user["email"] == "grace@example.com"
    assert user["deleted_at"] is None
    assert user["created_at"] == user["updated_at"]


@pytest.mark.parametrize("column", ["first_name", "last_name"])
def test_empty_name_is_rejected(conn, column):
    with violates(conn, errors.CheckViolation, f"users_{column}_length"):
        make_user(conn, **{column: ""})


@pytest.mark.parametrize("column", ["first_name", "last_name"])
def test_name_of_101_characters_is_rejected(conn, column):
    with violates(conn, errors.CheckViolation, f"users_{column}_length"):
        make_user(conn, **{column: "x" * 101})


@pytest.mark.parametrize("length", [1, 100])
def test_names_of_1_and_100_characters_are_accepted(conn, length):
    user = make_user(conn, first_name="é" * length, last_name="L" * length)

    assert len(user["first_name"]) == length
    assert len(user["last_name"]) == length


@pytest.mark.parametrize(
    "email",
    [
        "ada",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada@exa@mple.com",
        "ada lovelace@example.com",
        "ada@example .com",
        "ada\t@example.com",
        "ada@example.com\n",
        "",
        "a" * 243 + "@example.com",  # 255 characters
    ],
)
def test_malformed_email_is_rejected(conn, email):
    with violates(conn, errors.CheckViolation, "users_email_format"):
        make_user(conn, email=email)


@pytest.mark.parametrize(
    "email", ["a@b", "ada.lovelace+tag@example.co.uk", "a" * 242 + "@example.com"]
)
def test_well_formed_email_is_accepted(conn, email):
    assert make_user(conn, email=email)["email"] == email


def test_email_of_a_live_user_in_other_case_is_rejected(conn):
    make_user(conn, email="Ada@X.com")

    with violates(conn, errors.UniqueViolation, "users_email_live_key"):
        make_user(conn, email="ada@x.com")


def test_email_of_a_soft_deleted_user_can_be_reused(conn):
    old = make_user(conn, email="ada@x.com")
    conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (old["id"],))

    new = make_user(conn, email="ADA@x.com")

    assert new["deleted_at"] is None


def test_restoring_a_deleted_user_whose_email_was_taken_again_is_rejected(conn):
    old = make_user(conn, email="ada@x.com")
    conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (old["id"],))
    make_user(conn, email="ada@x.com")

    with violates(conn, errors.UniqueViolation, "users_email_live_key"):
        conn.execute("UPDATE users SET deleted_at = NULL WHERE id = %s", (old["id"],))


@pytest.mark.parametrize("zone", ["Mars/Olympus", "EST5EDTX", "utc", ""])
def test_unknown_timezone_is_rejected(conn, zone):
    with violates(conn, errors.ForeignKeyViolation, "users_timezone_fkey"):
        make_user(conn, timezone=zone)


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "Pacific/Kiritimati", "UTC"])
def test_known_timezone_is_accepted(conn, zone):
    assert make_user(conn, timezone=zone)["timezone"] == zone


def test_user_without_birthday_or_anniversary_is_rejected(conn):
    with violates(conn, errors.CheckViolation, "users_has_occasion"):
        make_user(conn, birthday_date=None, anniversary_date=None)


@pytest.mark.parametrize(
    "dates",
    [
        {"birthday_date": None, "anniversary_date": date(2015, 6, 1)},
        {"birthday_date": date(1990, 3, 15), "anniversary_date": None},
        {"birthday_date": date(1990, 3, 15), "anniversary_date": date(2015, 6, 1)},
    ],
    ids=["anniversary-only", "birthday-only", "both"],
)
def test_user_with_a_birthday_or_an_anniversary_is_accepted(conn, dates):
    user = make_user(conn, **dates)

    assert (user["birthday_date"], user["anniversary_date"]) == (
        dates["birthday_date"],
        dates["anniversary_date"],
    )


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("birthday_date", "users_birthday_range"),
        ("anniversary_date", "users_anniversary_range"),
    ],
)
def test_date_before_1900_is_rejected(conn, column, constraint):
    with violates(conn, errors.CheckViolation, constraint):
        make_user(conn, **{column: date(1899, 12, 31)})


@pytest.mark.parametrize("column", ["birthday_date", "anniversary_date"])
def test_date_of_1900_01_01_is_accepted(conn, column):
    assert make_user(conn, **{column: date(1900, 1, 1)})[column] == date(1900, 1, 1)


@pytest.mark.parametrize("column", ["location_city", "location_country"])
def test_location_longer_than_100_characters_is_rejected(conn, column):
    with violates(conn, errors.CheckViolation, f"users_{column}_length"):
        make_user(conn, **{column: "x" * 101})


@pytest.mark.parametrize("column", ["location_city", "location_country"])
def test_location_of_100_characters_or_none_is_accepted(conn, column):
    assert make_user(conn, **{column: "ü" * 100})[column] == "ü" * 100
    assert make_user(conn, **{column: None})[column] is None


def test_update_moves_updated_at_to_the_time_of_the_update(conn):
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    user = make_user(conn, created_at=long_ago, updated_at=long_ago)

    updated = conn.execute(
        "UPDATE users SET first_name = 'Augusta' WHERE id = %s "
        "RETURNING created_at, updated_at, now() AS now",
        (user["id"],),
    ).fetchone()

    assert updated["updated_at"] == updated["now"]
    assert updated["updated_at"] > long_ago
    assert updated["created_at"] == long_ago


def test_update_sets_updated_at_even_when_the_statement_sets_it_itself(conn):
    user = make_user(conn)

    updated = conn.execute(
        "UPDATE users SET updated_at = '1999-01-01' WHERE id = %s RETURNING updated_at, now()",
        (user["id"],),
    ).fetchone()

    assert updated["updated_at"] == updated["now"]


def test_update_in_a_later_transaction_advances_updated_at(db_url):
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as own:
        user = make_user(own)
        updated = own.execute(
            "UPDATE users SET last_name = 'King' WHERE id = %s RETURNING created_at, updated_at",
            (user["id"],),
        ).fetchone()
        own.execute("DELETE FROM users WHERE id = %s", (user["id"],))

    assert updated["updated_at"] > user["updated_at"]
    assert updated["created_at"] == user["created_at"]


# --- message_logs: column rules ---------------------------------------------------------


def test_valid_message_is_stored_with_defaults(conn):
    user = make_user(conn)

    message = make_message(conn, user["id"])

    assert message["status"] == "SCHEDULED"
    assert message["retry_count"] == 0
    assert message["idempotency_key"] == f"{user['id']}:BIRTHDAY:2020-03-15"


@pytest.mark.parametrize("status", ["DELIVERED", "sent", "", "SENT "])
def test_unknown_status_is_rejected(conn, status):
    user = make_user(conn)

    with violates(conn, errors.CheckViolation, "message_logs_status_check"):
        make_message(conn, user["id"], status=status)


@pytest.mark.parametrize(
    "status",
    ["SCHEDULED", "QUEUED", "SENDING", "SENT", "RETRYING", "FAILED", "CANCELLED", "EXPIRED"],
)
def test_every_documented_status_is_accepted(conn, status):
    user = make_user(conn)

    assert make_message(conn, user["id"], status=status)["status"] == status


@pytest.mark.parametrize("message_type", ["WEDDING", "birthday", ""])
def test_unknown_message_type_is_rejected(conn, message_type):
    user = make_user(conn)

    with violates(conn, errors.CheckViolation, "message_logs_type_check"):
        make_message(conn, user["id"], message_type=message_type)


def test_negative_retry_count_is_rejected(conn):
    user = make_user(conn)

    with violates(conn, errors.CheckViolation, "message_logs_retry_count_check"):
        make_message(conn, user["id"], retry_count=-1)


def test_positive_retry_count_is_accepted(conn):
    user = make_user(conn)

    assert make_message(conn, user["id"], retry_count=5)["retry_count"] == 5


@pytest.mark.parametrize(
    "wrong_key",
    [
        "{user}:BIRTHDAY:2020-3-15",
        "{user}:BIRTHDAY:2020/03/15",
        "{user}:BIRTHDAY:2020-03-16",
        "{user}:ANNIVERSARY:2020-03-15",
        "{user}:birthday:2020-03-15",
        "{upper_user}:BIRTHDAY:2020-03-15",
        "{other_user}:BIRTHDAY:2020-03-15",
        "{user}:BIRTHDAY:2020-03-15:retry",
        "",
    ],
)
def test_idempotency_key_not_matching_user_type_and_date_is_rejected(conn, wrong_key):
    user = make_user(conn)
    other = make_user(conn)
    key = wrong_key.format(
        user=user["id"], upper_user=str(user["id"]).upper(), other_user=other["id"]
    )

    with violates(conn, errors.CheckViolation, "message_logs_idempotency_key_check"):
        make_message(conn, user["id"], idempotency_key=key)


def test_idempotency_key_built_by_the_sql_function_matches_the_documented_format(conn):
    user = make_user(conn)

    row = conn.execute(
        "SELECT message_idempotency_key(%s, 'ANNIVERSARY', DATE '2031-01-05') AS key",
        (user["id"],),
    ).fetchone()

    assert row["key"] == f"{user['id']}:ANNIVERSARY:2031-01-05"


@pytest.mark.parametrize("code", [-1, 0, 99, 600, 1000])
def test_response_code_outside_100_to_599_is_rejected(conn, code):
    user = make_user(conn)

    with violates(conn, errors.CheckViolation, "message_logs_response_code_check"):
        make_message(conn, user["id"], api_response_code=code)


@pytest.mark.parametrize("code", [100, 200, 599, None])
def test_response_code_from_100_to_599_or_none_is_accepted(conn, code):
    user = make_user(conn)

    assert make_message(conn, user["id"], api_response_code=code)["api_response_code"] == code


def test_message_for_an_unknown_user_is_rejected(conn):
    nobody = "00000000-0000-0000-0000-000000000000"

    with violates(conn, errors.ForeignKeyViolation, "message_logs_user_id_fkey"):
        make_message(conn, nobody)


def test_update_of_a_message_moves_its_updated_at(conn):
    user = make_user(conn)
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    message = make_message(conn, user["id"], updated_at=long_ago)

    row = conn.execute(
        "UPDATE message_logs SET status = 'QUEUED' WHERE id = %s RETURNING updated_at, now()",
        (message["id"],),
    ).fetchone()

    assert row["updated_at"] == row["now"]


# --- message_logs: one message per user, type and date ----------------------------------


def test_second_message_for_same_user_type_and_day_is_rejected(conn):
    user = make_user(conn)
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    make_message(conn, user["id"], occasion_date=today)

    with violates_occasion_key(conn):
        make_message(conn, user["id"], occasion_date=today, message_content="again")


def test_second_message_is_rejected_while_the_first_sits_in_the_default_partition(conn):
    user = make_user(conn)
    first = make_message(conn, user["id"], occasion_date=PAST_DATE)
    assert first["partition"] == "message_logs_default"

    with violates_occasion_key(conn):
        make_message(conn, user["id"], occasion_date=PAST_DATE)


def test_second_message_is_rejected_after_the_first_was_moved_out_of_the_default_partition(
    conn,
):
    user = make_user(conn)
    first = make_message(conn, user["id"], occasion_date=PAST_DATE)
    moved = conn.execute("SELECT * FROM create_monthly_partitions(0, %s)", (PAST_DATE,)).fetchall()
    assert moved == [{"partition_name": "message_logs_y2020m03", "rows_moved": 1}]
    where = conn.execute(
        "SELECT tableoid::regclass::text AS partition FROM message_logs WHERE id = %s",
        (first["id"],),
    ).fetchone()
    assert where["partition"] == "message_logs_y2020m03"

    with violates_occasion_key(conn):
        make_message(conn, user["id"], occasion_date=PAST_DATE)


def test_duplicate_inserted_directly_into_the_partition_by_name_is_rejected(conn):
    user = make_user(conn)
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    first = make_message(conn, user["id"], occasion_date=today)
    assert first["partition"].startswith("message_logs_y")

    # PostgreSQL 15 partitions do not inherit the identity default: give an id.
    with violates_occasion_key(conn):
        make_message(conn, user["id"], table=first["partition"], id=10**12, occasion_date=today)


def test_duplicate_inserted_directly_into_the_default_partition_by_name_is_rejected(conn):
    user = make_user(conn)
    make_message(conn, user["id"], occasion_date=PAST_DATE)

    with violates_occasion_key(conn):
        make_message(
            conn, user["id"], table="message_logs_default", id=10**12, occasion_date=PAST_DATE
        )


def test_same_user_and_type_on_a_date_in_another_month_is_accepted(conn):
    user = make_user(conn)
    conn.execute("SELECT * FROM create_monthly_partitions(0, %s)", (PAST_DATE,))
    first = make_message(conn, user["id"], occasion_date=PAST_DATE)

    second = make_message(conn, user["id"], occasion_date=date(2020, 4, 15))

    assert first["partition"] == "message_logs_y2020m03"
    assert second["partition"] == "message_logs_default"
    count = conn.execute(
        "SELECT count(*) AS n FROM message_logs WHERE user_id = %s", (user["id"],)
    ).fetchone()
    assert count["n"] == 2


def test_same_user_and_date_with_the_other_message_type_is_accepted(conn):
    user = make_user(conn, anniversary_date=date(2015, 3, 15))
    make_message(conn, user["id"], message_type="BIRTHDAY")

    other = make_message(conn, user["id"], message_type="ANNIVERSARY")

    assert other["message_type"] == "ANNIVERSARY"


def test_same_type_and_date_for_another_user_is_accepted(conn):
    make_message(conn, make_user(conn)["id"])
    other_user = make_user(conn)

    assert make_message(conn, other_user["id"])["user_id"] == other_user["id"]


# --- message_logs: partition routing ----------------------------------------------------


def test_message_for_a_month_without_partition_lands_in_the_default_partition(conn):
    user = make_user(conn)

    message = make_message(conn, user["id"], occasion_date=PAST_DATE)

    assert message["partition"] == "message_logs_default"


def test_message_for_the_current_month_lands_in_its_monthly_partition(conn):
    user = make_user(conn)
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]

    message = make_message(conn, user["id"], occasion_date=today)

    assert message["partition"] == f"message_logs_y{today:%Y}m{today:%m}"


# --- idempotency_keys -------------------------------------------------------------------


def make_key(conn: psycopg.Connection, **overrides: Any) -> dict:
    values: dict[str, Any] = {"scope": "POST /users", "key": "abc-123"}
    values.update(overrides)
    query = sql.SQL("INSERT INTO idempotency_keys ({}) VALUES ({}) RETURNING *").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(map(sql.Placeholder, values)),
    )
    return conn.execute(query, values).fetchone()


def test_same_idempotency_key_twice_in_one_scope_is_rejected(conn):
    make_key(conn, scope="POST /users", key="k1")

    with violates(conn, errors.UniqueViolation, "idempotency_keys_scope_key_key"):
        make_key(conn, scope="POST /users", key="k1")


def test_same_idempotency_key_in_another_scope_is_accepted(conn):
    make_key(conn, scope="POST /users", key="k1")

    assert make_key(conn, scope="PUT /users", key="k1")["scope"] == "PUT /users"


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("key", "", "idempotency_keys_key_length"),
        ("key", "k" * 256, "idempotency_keys_key_length"),
        ("scope", "", "idempotency_keys_scope_length"),
        ("scope", "s" * 101, "idempotency_keys_scope_length"),
        ("response_status", 99, "idempotency_keys_response_status_check"),
        ("response_status", 600, "idempotency_keys_response_status_check"),
    ],
)
def test_idempotency_key_field_out_of_range_is_rejected(conn, column, value, constraint):
    with violates(conn, errors.CheckViolation, constraint):
        make_key(conn, **{column: value})


@pytest.mark.parametrize(
    ("column", "value"),
    [("key", "k" * 255), ("scope", "s" * 100), ("response_status", 100), ("response_status", 599)],
)
def test_idempotency_key_field_at_its_limit_is_accepted(conn, column, value):
    assert make_key(conn, **{column: value})[column] == value
