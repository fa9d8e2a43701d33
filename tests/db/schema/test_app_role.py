"""sql/roles/app_role.sql: the service's least-privilege role, used for real.

Each test runs the script with psql on a private migrated database under a role name
of its own (roles belong to the whole server), connects as that role (trust auth on
127.0.0.1) and drops the role at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from schema import migrations

SCRIPT = Path(__file__).resolve().parents[3] / "sql" / "roles" / "app_role.sql"

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


def run_script(url: str, *variables: str) -> subprocess.CompletedProcess:
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(SCRIPT)]
    for variable in variables:
        args += ["-v", variable]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def drop_role(url: str, role: str) -> None:
    """DROP OWNED takes back its grants here and its default privileges; then the role."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def role_name(fresh_db_url: str) -> Iterator[str]:
    """A role name of this test's own; the role is dropped afterwards if it was created."""
    name = f"birthday_app_test_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        drop_role(fresh_db_url, name)


@pytest.fixture
def app_role(fresh_db_url: str, role_name: str) -> str:
    """The role made by the script with its defaults but the name."""
    result = run_script(fresh_db_url, f"app_role={role_name}")
    assert result.returncode == 0, result.stderr
    return role_name


def connect_as(url: str, role: str) -> psycopg.Connection:
    return psycopg.connect(url, user=role, row_factory=dict_row, autocommit=True)


def insert_user(conn: psycopg.Connection, email: str = "ada@example.com") -> dict:
    return conn.execute(
        """
        INSERT INTO users (first_name, last_name, email, timezone, birthday_date)
        VALUES ('Ada', 'Lovelace', %s, 'Europe/London', '1990-12-10')
        RETURNING id, updated_at
        """,
        (email,),
    ).fetchone()


def role_attributes(url: str, role: str) -> dict:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(
            """
            SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,
                   rolbypassrls
            FROM pg_roles WHERE rolname = %s
            """,
            (role,),
        ).fetchone()


def test_the_role_can_log_in_and_has_no_administrative_attributes(fresh_db_url, app_role):
    attributes = role_attributes(fresh_db_url, app_role)

    assert attributes == {
        "rolcanlogin": True,
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "rolreplication": False,
        "rolbypassrls": False,
    }


def test_the_role_can_insert_a_user(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        user = insert_user(conn)
        count = conn.execute("SELECT count(*) AS n FROM users WHERE id = %s", (user["id"],))

        assert count.fetchone()["n"] == 1


def test_the_role_can_update_a_user(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        user = insert_user(conn)
        updated = conn.execute(
            "UPDATE users SET last_name = 'King' WHERE id = %s RETURNING last_name",
            (user["id"],),
        ).fetchone()

    assert updated == {"last_name": "King"}


def test_the_role_can_insert_a_greeting_with_its_idempotency_key(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        user = insert_user(conn)
        row = conn.execute(
            """
            INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                                      scheduled_send_time, next_attempt_at, idempotency_key)
            VALUES (%(user)s, 'BIRTHDAY', %(day)s, 'Hey, Ada Lovelace it''s your birthday',
                    local_send_instant(%(day)s, '09:00', 'Europe/London'),
                    local_send_instant(%(day)s, '09:00', 'Europe/London'),
                    message_idempotency_key(%(user)s, 'BIRTHDAY', %(day)s))
            RETURNING id, idempotency_key
            """,
            {"user": user["id"], "day": date.today()},
        ).fetchone()

    assert row["id"] > 0
    assert row["idempotency_key"] == f"{user['id']}:BIRTHDAY:{date.today():%Y-%m-%d}"


def test_the_role_can_call_create_monthly_partitions_in_dry_run(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        rows = conn.execute(
            "SELECT partition_name, rows_moved"
            " FROM create_monthly_partitions(0, '2035-01-01', true)"
        ).fetchall()

    assert rows == [{"partition_name": "message_logs_y2035m01", "rows_moved": 0}]


def test_the_role_can_compute_a_local_send_instant(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        instant = conn.execute(
            "SELECT local_send_instant('2030-07-01', '09:00', 'Europe/London')"
            " AT TIME ZONE 'UTC' AS utc"
        ).fetchone()["utc"]

    assert instant.isoformat() == "2030-07-01T08:00:00"


def test_the_role_can_read_schema_migrations(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        status = migrations.read_status(conn, migrations.discover())

    assert status.applied
    assert status.ok


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE users",
        "CREATE TABLE x ()",
        "ALTER TABLE users ADD COLUMN x int",
        "TRUNCATE users",
        "DROP TABLE message_logs_default",
        "CREATE SCHEMA intruder",
    ],
)
def test_the_role_cannot_change_the_schema_or_empty_a_table(fresh_db_url, app_role, statement):
    with connect_as(fresh_db_url, app_role) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_role_can_run_partition_maintenance_as_the_owner(fresh_db_url, app_role):
    # The functions are SECURITY DEFINER (migration 0007): the scheduler's daily job
    # works while connected as the application role; the partitions belong to the owner.
    with connect_as(fresh_db_url, app_role) as conn:
        created = conn.execute(
            "SELECT partition_name FROM create_monthly_partitions(0, '2035-01-01', false)"
        ).fetchall()
        dropped = conn.execute(
            "SELECT partition_name FROM drop_old_partitions(interval '1 month', '2035-03-01')"
        ).fetchall()
        owner = conn.execute(
            "SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = 'message_logs'"
        ).fetchone()["owner"]

    assert [row["partition_name"] for row in created] == ["message_logs_y2035m01"]
    assert "message_logs_y2035m01" in [row["partition_name"] for row in dropped]
    assert owner != app_role


def test_the_role_still_cannot_create_a_partition_by_hand(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(
            "CREATE TABLE message_logs_y2037m01 PARTITION OF message_logs"
            " FOR VALUES FROM ('2037-01-01') TO ('2037-02-01')"
        )


def test_the_role_cannot_reset_pg_stat_statements(fresh_db_url, app_role):
    with connect_as(fresh_db_url, app_role) as conn:
        installed = conn.execute(
            "SELECT to_regprocedure('pg_stat_statements_reset(oid,oid,bigint)') AS f"
        ).fetchone()["f"]
        if installed is None:
            pytest.skip("pg_stat_statements is not installed in this database")
        allowed = conn.execute(
            "SELECT has_function_privilege(%s, %s::regprocedure, 'EXECUTE') AS ok",
            (app_role, installed),
        ).fetchone()["ok"]

    assert allowed is False


def test_a_partition_the_owner_creates_later_is_readable_by_the_role(fresh_db_url, app_role):
    with psycopg.connect(fresh_db_url, autocommit=True) as owner:
        owner.execute("SELECT create_monthly_partitions(0, '2036-01-01')")

    with connect_as(fresh_db_url, app_role) as conn:
        count = conn.execute("SELECT count(*) AS n FROM message_logs_y2036m01").fetchone()

    assert count == {"n": 0}


def test_running_the_script_twice_succeeds(fresh_db_url, app_role):
    second = run_script(fresh_db_url, f"app_role={app_role}")

    assert second.returncode == 0, second.stderr
    with connect_as(fresh_db_url, app_role) as conn:
        assert insert_user(conn)["id"]


def test_running_the_script_again_takes_back_extra_rights(fresh_db_url, app_role):
    with psycopg.connect(fresh_db_url, autocommit=True) as owner:
        role = sql.Identifier(app_role)
        owner.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(role))
        owner.execute(sql.SQL("GRANT TRUNCATE ON users TO {}").format(role))
        owner.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(role))

    result = run_script(fresh_db_url, f"app_role={app_role}")

    assert result.returncode == 0, result.stderr
    with connect_as(fresh_db_url, app_role) as conn:
        rights = conn.execute(
            """
            SELECT has_table_privilege('users', 'TRUNCATE') AS truncate,
                   has_schema_privilege('public', 'CREATE') AS create_in_public,
                   (SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user) AS createdb
            """
        ).fetchone()
    assert rights == {"truncate": False, "create_in_public": False, "createdb": False}


def test_the_script_takes_create_on_schema_public_away_from_public(fresh_db_url, role_name):
    with psycopg.connect(fresh_db_url, autocommit=True) as owner:
        owner.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")

    result = run_script(fresh_db_url, f"app_role={role_name}")

    assert result.returncode == 0, result.stderr
    with psycopg.connect(fresh_db_url) as conn:
        public_may_create = conn.execute(
            "SELECT count(*) FROM pg_namespace, aclexplode(nspacl) AS acl"
            " WHERE nspname = 'public' AND acl.grantee = 0 AND acl.privilege_type = 'CREATE'"
        ).fetchone()[0]
    assert public_may_create == 0


def test_the_script_sets_the_password_given(fresh_db_url, role_name):
    result = run_script(fresh_db_url, f"app_role={role_name}", "app_password=s3cret-enough")

    assert result.returncode == 0, result.stderr
    with psycopg.connect(fresh_db_url) as conn:
        verifier = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role_name,)
        ).fetchone()[0]
    assert verifier is not None
    assert verifier.startswith(("SCRAM-SHA-256$", "md5"))


def test_the_script_warns_about_the_default_password(fresh_db_url, role_name):
    result = run_script(fresh_db_url, f"app_role={role_name}")

    assert result.returncode == 0, result.stderr
    assert "default password" in result.stdout


def test_the_script_refuses_a_database_without_the_schema(empty_db_url, role_name):
    result = run_script(empty_db_url, f"app_role={role_name}")

    assert result.returncode != 0
    assert "run the migrations" in result.stderr
