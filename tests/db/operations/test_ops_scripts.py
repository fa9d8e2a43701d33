"""The operator scripts in sql/ops/ on a seeded database with rows in every awkward state.

test_sql_scripts.py already runs every script on a freshly migrated, empty database;
here they run on users and message history from seed.loader, plus stuck, retrying, due,
failed and DEFAULT-partition rows, and their answers are checked against the data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from schema import admin
from seed.loader import seed_database

OPS_DIR = Path(__file__).resolve().parents[3] / "sql" / "ops"
OPS_SCRIPTS = sorted(OPS_DIR.glob("*.sql"))
SERVER_URL = os.environ.get("TEST_DATABASE_SERVER", "postgresql://postgres@127.0.0.1:5432")

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")

# Rows put into given states on top of the seed, picked among its SCHEDULED rows.
STATE_CHANGES = {
    "stuck_queued": """
        UPDATE message_logs SET status = 'QUEUED', locked_until = now() - interval '20 minutes'
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED' ORDER BY id LIMIT 2)
        RETURNING id""",
    "stuck_sending": """
        UPDATE message_logs SET status = 'SENDING', locked_until = now() - interval '1 hour',
               retry_count = 2
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED' ORDER BY id LIMIT 1)
        RETURNING id""",
    "leased_queued": """
        UPDATE message_logs SET status = 'QUEUED', locked_until = now() + interval '10 minutes'
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED' ORDER BY id LIMIT 1)
        RETURNING id""",
    "retrying": """
        UPDATE message_logs SET status = 'RETRYING', retry_count = 3, api_response_code = 503,
               error_message = 'provider returned 503', last_retry_at = now(),
               next_attempt_at = now() + interval '1 hour'
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED' ORDER BY id LIMIT 3)
        RETURNING id""",
    "failed": """
        UPDATE message_logs SET status = 'FAILED', api_response_code = 422,
               error_message = 'ops test: mailbox refused', updated_at = now()
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED' ORDER BY id LIMIT 2)
        RETURNING id""",
    # Triggers are off (session_replication_role), so this updated_at stays 30 days old.
    "failed_long_ago": """
        UPDATE message_logs SET status = 'FAILED', api_response_code = 400,
               error_message = 'ops test: old failure', updated_at = now() - interval '30 days'
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED' ORDER BY id LIMIT 1)
        RETURNING id""",
    "in_default": """
        INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                                  scheduled_send_time, next_attempt_at, idempotency_key)
        SELECT id, 'BIRTHDAY', DATE '2099-01-05', 'Hey', TIMESTAMPTZ '2099-01-05 09:00Z',
               TIMESTAMPTZ '2099-01-05 09:00Z',
               message_idempotency_key(id, 'BIRTHDAY', DATE '2099-01-05')
        FROM (SELECT id FROM users ORDER BY id LIMIT 3) AS some_users
        RETURNING id""",
    # Last: the changes above pick SCHEDULED rows too and must not take these.
    "due": """
        UPDATE message_logs SET next_attempt_at = now() - interval '3 hours'
        WHERE id IN (SELECT id FROM message_logs WHERE status = 'SCHEDULED'
                     AND next_attempt_at > now() ORDER BY id LIMIT 4)
        RETURNING id""",
}


@pytest.fixture(scope="module")
def ops_db(template_db: str) -> Iterator[tuple[str, dict[str, list[int]]]]:
    """A seeded clone of the template, and the ids of the rows put in each state."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = f"{SERVER_URL}/birthday_test_ops_{worker}_{uuid.uuid4().hex[:10]}"
    admin.ensure_database(url, template=admin.database_name(template_db))
    try:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            now = datetime.now(UTC).replace(microsecond=0)
            seed_database(conn, count=300, random_seed=5, now=now, send_time=time(9))
            conn.execute("SET session_replication_role = replica")
            ids = {
                state: [row["id"] for row in conn.execute(statement).fetchall()]
                for state, statement in STATE_CHANGES.items()
            }
            conn.commit()
        yield url, ids
    finally:
        admin.drop_database(url)


def run(url: str, script: str, *variables: str, unaligned: bool = False):
    args = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(OPS_DIR / script)]
    if unaligned:
        args.append("-A")
    for variable in variables:
        args += ["-v", variable]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def table_after(stdout: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the unaligned (-A) result whose header line starts with header_start."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    columns = lines[start].split("|")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("(") and line.endswith(("row)", "rows)")):
            break
        rows.append(dict(zip(columns, line.split("|"), strict=True)))
    return rows


@pytest.mark.parametrize("script", OPS_SCRIPTS, ids=lambda p: p.name)
def test_ops_script_runs_clean_on_a_seeded_database(ops_db, script):
    url, _ = ops_db

    result = run(url, script.name)

    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr


@pytest.mark.parametrize("script", OPS_SCRIPTS, ids=lambda p: p.name)
def test_ops_script_opens_with_a_header_saying_how_to_run_it_and_what_is_healthy(script):
    header = script.read_text().split("\n\n")[0]

    assert header.startswith("-- ")
    assert f'psql "$DATABASE_URL" -f sql/ops/{script.name}' in header
    assert "Healthy" in header


def test_partition_sizes_shouts_when_the_default_partition_holds_rows(ops_db):
    url, _ = ops_db

    result = run(url, "partition_sizes.sql")

    assert "!!!!! message_logs_default holds 3 rows: it should be EMPTY." in result.stdout
    assert "SELECT * FROM create_monthly_partitions(0, '2099-01-01');" in result.stdout


def test_partition_sizes_says_so_when_the_default_partition_is_empty(fresh_db_url):
    result = run(fresh_db_url, "partition_sizes.sql")

    assert result.returncode == 0, result.stderr
    assert "OK: message_logs_default is empty." in result.stdout
    assert "!!!!!" not in result.stdout


def test_partition_sizes_counts_every_partition_exactly_when_asked(ops_db):
    url, _ = ops_db
    with psycopg.connect(url) as conn:
        expected = dict(
            conn.execute(
                "SELECT c.relname, (SELECT count(*) FROM message_logs m"
                "                   WHERE m.tableoid = c.oid)::text"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'message_logs'::regclass"
            ).fetchall()
        )

    result = run(url, "partition_sizes.sql", "exact=true", unaligned=True)

    rows = table_after(result.stdout, "partition|occasion_dates|")
    assert {row["partition"]: row["exact_rows"] for row in rows} == expected
    assert sum(int(count) for count in expected.values()) > 300


def test_slow_statements_prints_a_notice_instead_of_failing_without_the_library(ops_db):
    url, _ = ops_db
    with psycopg.connect(url) as conn:
        preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    if "pg_stat_statements" in preloaded:
        pytest.skip("this server preloads pg_stat_statements")

    result = run(url, "slow_statements.sql")

    assert result.returncode == 0, result.stderr
    assert "NOTICE: pg_stat_statements is installed" in result.stdout
    assert "shared_preload_libraries" in result.stdout


def test_stuck_messages_lists_the_rows_whose_lease_ran_out(ops_db):
    url, ids = ops_db

    result = run(url, "stuck_messages.sql", unaligned=True)

    rows = table_after(result.stdout, "id|occasion_date|status|")
    listed = {int(row["id"]): row["status"] for row in rows}
    expected = {i: "QUEUED" for i in ids["stuck_queued"]} | {
        i: "SENDING" for i in ids["stuck_sending"]
    }
    assert listed == expected


def test_stuck_messages_counts_retrying_rows_by_retry_count(ops_db):
    url, ids = ops_db

    result = run(url, "stuck_messages.sql", unaligned=True)

    rows = table_after(result.stdout, "retry_count|rows|")
    assert [(row["retry_count"], row["rows"]) for row in rows] == [("3", str(len(ids["retrying"])))]
    assert rows[0]["usual_response_code"] == "503"


def test_due_backlog_counts_the_due_rows_the_dispatcher_would_claim(ops_db):
    url, ids = ops_db
    with psycopg.connect(url) as conn:
        due = conn.execute(
            "SELECT count(*) FROM message_logs"
            " WHERE status IN ('SCHEDULED', 'RETRYING') AND next_attempt_at <= now()"
        ).fetchone()[0]

    result = run(url, "due_backlog.sql", unaligned=True)

    summary = table_after(result.stdout, "due_rows|")
    assert len(ids["due"]) == 4
    assert int(summary[0]["due_rows"]) == due >= 4


def test_due_backlog_groups_due_rows_by_hour(ops_db):
    url, _ = ops_db
    with psycopg.connect(url) as conn:
        expected = conn.execute(
            "SELECT count(DISTINCT date_trunc('hour', next_attempt_at)) FROM message_logs"
            " WHERE status IN ('SCHEDULED', 'RETRYING') AND next_attempt_at <= now()"
        ).fetchone()[0]

    result = run(url, "due_backlog.sql", unaligned=True)

    hours = table_after(result.stdout, "due_hour|rows|")
    assert len(hours) == expected >= 1
    assert sum(int(hour["rows"]) for hour in hours) >= 4


def test_failures_groups_by_error_message_and_response_code(ops_db):
    url, ids = ops_db

    result = run(url, "failures.sql", unaligned=True)

    groups = table_after(result.stdout, "status|api_response_code|error_message|")
    mine = [g for g in groups if g["error_message"] == "ops test: mailbox refused"]
    assert [(g["status"], g["api_response_code"], g["rows"]) for g in mine] == [
        ("FAILED", "422", str(len(ids["failed"])))
    ]


def test_failures_leaves_out_rows_older_than_the_days_asked_for(ops_db):
    url, _ = ops_db

    result = run(url, "failures.sql", unaligned=True)

    assert result.returncode == 0, result.stderr
    assert "ops test: old failure" not in result.stdout


def test_failures_looks_further_back_with_more_days(ops_db):
    url, _ = ops_db

    result = run(url, "failures.sql", "days=60", unaligned=True)

    assert "ops test: old failure" in result.stdout


def test_connections_shows_sessions_by_application_name(ops_db):
    url, _ = ops_db
    with psycopg.connect(url, application_name="ops-test-idle"):
        result = run(url, "connections.sql", unaligned=True)

    groups = table_after(result.stdout, "database|application_name|state|")
    assert {"application_name": "ops-test-idle", "state": "idle", "sessions": "1"}.items() <= next(
        g for g in groups if g["application_name"] == "ops-test-idle"
    ).items()


def test_connections_shows_who_waits_for_a_lock_and_who_holds_it(ops_db):
    url, _ = ops_db
    with psycopg.connect(url, application_name="ops-test-blocker") as blocker:
        blocker.execute("LOCK TABLE scheduler_heartbeats IN ACCESS EXCLUSIVE MODE")
        blocker_pid = blocker.info.backend_pid
        waiter = psycopg.connect(url, application_name="ops-test-waiter", autocommit=True)
        waiter.execute("SET lock_timeout = '20s'")

        def wait_for_lock() -> None:
            with contextlib.suppress(errors.LockNotAvailable):
                waiter.execute("SELECT count(*) FROM scheduler_heartbeats")

        thread = threading.Thread(target=wait_for_lock)
        thread.start()
        try:
            for _ in range(100):
                waiting = blocker.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted",
                    (waiter.info.backend_pid,),
                ).fetchone()[0]
                if waiting:
                    break
                threading.Event().wait(0.05)
            result = run(url, "connections.sql", unaligned=True)
        finally:
            blocker.rollback()
            thread.join(timeout=30)
            waiter.close()

    waits = table_after(result.stdout, "waiting_pid|")
    assert [(w["waiting_application"], w["blocked_by_pids"]) for w in waits] == [
        ("ops-test-waiter", f"{{{blocker_pid}}}")
    ]


def test_index_usage_lists_indexes_never_scanned_but_not_primary_keys(fresh_db_url):
    result = run(fresh_db_url, "index_usage.sql", unaligned=True)

    unused = {
        row["index_name"]
        for row in table_after(result.stdout, "table_name|index_name|partitions|size|")
    }
    assert "users_search_trgm_idx" in unused
    assert "users_pkey" not in unused
    assert "message_logs_pkey" not in unused


def test_index_usage_adds_up_partitions_unless_asked_for_detail(ops_db):
    url, _ = ops_db

    summed = run(url, "index_usage.sql", unaligned=True)
    detailed = run(url, "index_usage.sql", "detail=true", unaligned=True)

    summed_names = {
        r["index_name"] for r in table_after(summed.stdout, "table_name|index_name|kind|")
    }
    detailed_names = {
        r["index_name"] for r in table_after(detailed.stdout, "table_name|index_name|kind|")
    }
    assert "message_logs_due_idx" in summed_names
    assert not any(name.startswith("message_logs_y") for name in summed_names)
    assert any(name.startswith("message_logs_y") for name in detailed_names)
