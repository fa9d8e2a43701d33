"""deploy/backup.sh and deploy/restore.sh: a seeded database survives the round trip.

A module-wide seeded clone is backed up once with the script and restored once into a
new database; the tests compare the two. Tests that change a database restore into
one of their own. Every scratch database is dropped at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from schema import admin, migrations
from seed.loader import seed_database

ROOT = Path(__file__).resolve().parents[3]
BACKUP = ROOT / "deploy" / "backup.sh"
RESTORE = ROOT / "deploy" / "restore.sh"
SERVER_URL = os.environ.get("TEST_DATABASE_SERVER", "postgresql://postgres@127.0.0.1:5432")
NOW = datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
USERS = 300
RANDOM_SEED = 7
TABLES = ("users", "message_logs", "idempotency_keys", "schema_migrations")

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("pg_dump", "pg_restore", "psql")),
    reason="the PostgreSQL client tools are not installed",
)


def scratch_url(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{SERVER_URL}/{prefix}_{worker}_{uuid.uuid4().hex[:10]}"


def run(*args: str | Path, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def row_count(url: str, table: str) -> int:
    return query(url, f"SELECT count(*) FROM {table}")[0][0]


def partition_counts(url: str) -> dict[str, int]:
    return dict(
        query(
            url,
            """
            SELECT c.relname, (SELECT count(*) FROM message_logs m WHERE m.tableoid = c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'message_logs'::regclass
            """,
        )
    )


@pytest.fixture(scope="module")
def source_url(template_db: str) -> Iterator[str]:
    """A clone of the template with seeded users, messages and a few idempotency keys."""
    url = scratch_url("birthday_test_backup_src")
    admin.ensure_database(url, template=admin.database_name(template_db))
    try:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            seed_database(conn, count=USERS, random_seed=RANDOM_SEED, now=NOW, send_time=time(9))
            conn.execute(
                """
                INSERT INTO idempotency_keys (scope, key, request_fingerprint, response_status,
                                              response_body, completed_at)
                SELECT 'POST /users', 'key-' || n, 'fingerprint', 201, '{"id": 1}', now()
                FROM generate_series(1, 3) AS n
                """
            )
            conn.commit()
        yield url
    finally:
        admin.drop_database(url)


@pytest.fixture(scope="module")
def dump(source_url: str, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backup") / "birthday.dump"
    result = run(BACKUP, source_url, out)
    if result.returncode != 0:
        pytest.fail(f"backup.sh failed: {result.stderr}")
    return out


@pytest.fixture(scope="module")
def restored_url(dump: Path) -> Iterator[str]:
    """The dump restored by the script into a database that did not exist."""
    url = scratch_url("birthday_test_restored")
    try:
        result = run(RESTORE, dump, url)
        if result.returncode != 0:
            pytest.fail(f"restore.sh failed: {result.stderr}")
        yield url
    finally:
        admin.drop_database(url)


@pytest.fixture
def target_url() -> Iterator[str]:
    """A database name of this test's own, dropped at the end."""
    url = scratch_url("birthday_test_restore_target")
    try:
        yield url
    finally:
        admin.drop_database(url)


def test_backup_prints_the_file_it_wrote_and_its_size(source_url, tmp_path):
    out = tmp_path / "nested" / "dir" / "birthday.dump"

    result = run(BACKUP, source_url, out)

    assert result.returncode == 0, result.stderr
    assert f"backup: {out}" in result.stdout
    assert f"size: {out.stat().st_size} bytes" in result.stdout
    assert out.stat().st_size > 10_000


def test_backup_writes_to_backups_with_a_utc_timestamp_by_default(source_url, tmp_path):
    result = run(BACKUP, cwd=tmp_path, env={"DATABASE_URL": source_url})

    assert result.returncode == 0, result.stderr
    files = [p.name for p in (tmp_path / "backups").iterdir()]
    assert len(files) == 1
    assert re.fullmatch(r"birthday-\d{8}T\d{6}Z\.dump", files[0])


def test_backup_of_an_unreachable_database_fails_and_leaves_no_file(tmp_path):
    out = tmp_path / "birthday.dump"

    result = run(BACKUP, "postgresql://postgres@127.0.0.1:1/birthday", out)

    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_backup_does_not_overwrite_an_existing_file(source_url, tmp_path):
    out = tmp_path / "birthday.dump"
    out.write_text("precious")

    result = run(BACKUP, source_url, out)

    assert result.returncode != 0
    assert out.read_text() == "precious"


def test_backup_with_too_many_arguments_prints_its_usage():
    result = run(BACKUP, "postgresql://x/y", "out.dump", "extra")

    assert result.returncode == 2
    assert "usage: deploy/backup.sh" in result.stderr


def test_restore_without_a_target_prints_its_usage(dump):
    result = run(RESTORE, dump)

    assert result.returncode == 2
    assert "usage: deploy/restore.sh" in result.stderr


@pytest.mark.parametrize("table", TABLES)
def test_restored_table_has_as_many_rows_as_the_original(source_url, restored_url, table):
    original = row_count(source_url, table)

    assert row_count(restored_url, table) == original
    assert original > 0


def test_restored_partitions_hold_the_same_rows_each(source_url, restored_url):
    original = partition_counts(source_url)

    assert partition_counts(restored_url) == original
    assert sum(original.values()) == row_count(source_url, "message_logs")


def test_restored_database_has_the_same_partition_list(source_url, restored_url):
    bounds = """
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'message_logs'::regclass ORDER BY 1
    """

    assert query(restored_url, bounds) == query(source_url, bounds)
    assert len(query(source_url, bounds)) > 13


def test_restored_database_passes_the_migration_check(restored_url):
    with psycopg.connect(restored_url, row_factory=dict_row) as conn:
        status = migrations.read_status(conn, migrations.discover())

    assert status.ok, (status.pending, status.drifted, status.missing)
    assert len(status.applied) == len(migrations.discover())


def test_restore_refuses_a_database_that_is_not_empty(dump, restored_url):
    users_before = row_count(restored_url, "users")

    result = run(RESTORE, dump, restored_url)

    assert result.returncode == 1
    assert "is not empty" in result.stderr
    assert row_count(restored_url, "users") == users_before


def test_restore_with_clean_replaces_what_a_database_holds(dump, source_url, target_url):
    assert run(RESTORE, dump, target_url).returncode == 0
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("DELETE FROM idempotency_keys")
        conn.execute("CREATE TABLE stray (id int)")

    result = run(RESTORE, "--clean", dump, target_url)

    assert result.returncode == 0, result.stderr
    assert row_count(target_url, "idempotency_keys") == row_count(source_url, "idempotency_keys")
    assert query(target_url, "SELECT to_regclass('stray') IS NULL") == [(True,)]


def test_restore_of_a_file_that_is_not_a_dump_fails_and_creates_nothing(tmp_path, target_url):
    bogus = tmp_path / "bogus.dump"
    bogus.write_text("not a dump")

    result = run(RESTORE, bogus, target_url)

    assert result.returncode == 1
    assert "not a pg_dump custom-format archive" in result.stderr
    exists = query(
        admin.maintenance_url(target_url),
        "SELECT count(*) FROM pg_database WHERE datname = %s",
        (admin.database_name(target_url),),
    )
    assert exists == [(0,)]
