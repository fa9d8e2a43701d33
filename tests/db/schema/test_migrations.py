"""The migration runner against real, empty databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from api.resources import resources_of
from app import create_app
from schema import migrations

ROOT = Path(__file__).resolve().parents[3]
EXPECTED_TABLES = {"schema_migrations", "time_zones", "users", "message_logs", "idempotency_keys"}


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def _schema_snapshot(conn: psycopg.Connection) -> dict[str, list]:
    """Tables with columns, constraints, indexes and functions of the public schema."""
    queries = {
        "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                      FROM information_schema.columns WHERE table_schema = 'public'
                      ORDER BY 1, 2""",
        "constraints": """SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid)
                          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                          ORDER BY 1, 2""",
        "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes
                      WHERE schemaname = 'public' ORDER BY 1, 2""",
        "functions": """SELECT proname, pg_get_function_identity_arguments(oid)
                        FROM pg_proc WHERE pronamespace = 'public'::regnamespace
                          AND prokind = 'f' AND proname NOT LIKE '%%trgm%%'
                          AND proname NOT LIKE 'gtrgm%%' AND proname NOT LIKE 'gin%%'
                        ORDER BY 1, 2""",
    }
    return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}


def _write_migrations(directory: Path, files: dict[str, str]) -> list[migrations.Migration]:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return migrations.discover(directory)


def test_upgrade_creates_the_expected_schema(empty_db_url):
    with _connect(empty_db_url) as conn:
        applied = migrations.upgrade(conn, migrations.discover(), report=lambda _: None)
        tables = {
            row["tablename"]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        rows = conn.execute("SELECT version, name, checksum, duration_ms FROM schema_migrations")
        recorded = rows.fetchall()
        partitioned = conn.execute(
            "SELECT partstrat, a.attname FROM pg_partitioned_table p"
            " JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
            " WHERE partrelid = 'message_logs'::regclass"
        ).fetchone()

    assert [m.label for m in applied] == [m.label for m in migrations.discover()]
    assert tables >= EXPECTED_TABLES
    assert [row["version"] for row in recorded] == [m.version for m in applied]
    assert all(len(row["checksum"]) == 64 and row["duration_ms"] >= 0 for row in recorded)
    assert partitioned == {"partstrat": "r", "attname": "occasion_date"}


def test_upgrade_downgrade_to_zero_and_upgrade_again_round_trips(empty_db_url):
    with _connect(empty_db_url) as conn:
        all_files = migrations.discover()
        migrations.upgrade(conn, all_files, report=lambda _: None)
        before = _schema_snapshot(conn)

        undone = migrations.downgrade(conn, all_files, steps=len(all_files), report=lambda _: None)
        emptied = _schema_snapshot(conn)
        migrations.upgrade(conn, all_files, report=lambda _: None)
        after = _schema_snapshot(conn)

    assert [m.version for m in undone] == sorted((m.version for m in all_files), reverse=True)
    assert {row["table_name"] for row in emptied["columns"]} == {"schema_migrations"}
    assert after == before


def test_upgrade_to_a_version_stops_there_and_dry_run_changes_nothing(empty_db_url):
    with _connect(empty_db_url) as conn:
        files = migrations.discover()
        planned = migrations.upgrade(conn, files, dry_run=True, report=lambda _: None)
        after_dry_run = migrations.read_status(conn, files)
        migrations.upgrade(conn, files, to=2, report=lambda _: None)
        partial = migrations.read_status(conn, files)

    assert [m.version for m in planned] == [m.version for m in files]
    assert after_dry_run.applied == []
    assert partial.current == 2
    assert [m.version for m in partial.pending] == [m.version for m in files if m.version > 2]


def test_a_failing_migration_rolls_back_and_names_file_and_line(empty_db_url, tmp_path):
    files = _write_migrations(
        tmp_path / "migrations",
        {
            "0001_first.up.sql": "CREATE TABLE first_table (id int);\n",
            "0002_broken.up.sql": (
                "-- creates a table, then fails\n"
                "CREATE TABLE half_done (id int);\n"
                "\n"
                "INSERT INTO half_done VALUES (1);\n"
                "SELECT 1 / 0;\n"
            ),
        },
    )
    with _connect(empty_db_url) as conn:
        with pytest.raises(migrations.MigrationError) as failure:
            migrations.upgrade(conn, files, report=lambda _: None)
        half_done = conn.execute("SELECT to_regclass('half_done') AS t").fetchone()["t"]
        status = migrations.read_status(conn, files)

    assert "0002_broken.up.sql line 5" in str(failure.value)
    assert "division by zero" in str(failure.value)
    assert half_done is None
    assert status.current == 1
    assert [m.label for m in status.pending] == ["0002_broken"]


def test_a_syntax_error_is_located_on_its_own_line(empty_db_url, tmp_path):
    files = _write_migrations(
        tmp_path / "migrations",
        {"0001_typo.up.sql": "CREATE TABLE ok_table (id int);\n\nCREATE TABEL oops (id int);\n"},
    )
    with _connect(empty_db_url) as conn, pytest.raises(migrations.MigrationError) as failure:
        migrations.upgrade(conn, files, report=lambda _: None)

    assert "0001_typo.up.sql line 3" in str(failure.value)


def test_verify_reports_an_applied_migration_that_was_edited(empty_db_url, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    with _connect(empty_db_url) as conn:
        migrations.upgrade(conn, migrations.discover(directory), report=lambda _: None)
        edited = directory / "0002_message_logs.up.sql"
        edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
        status = migrations.read_status(conn, migrations.discover(directory))

    assert status.drifted == ["0002_message_logs"]
    assert not status.ok


def test_line_ending_changes_are_not_drift(empty_db_url, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    with _connect(empty_db_url) as conn:
        migrations.upgrade(conn, migrations.discover(directory), report=lambda _: None)
        path = directory / "0001_users.up.sql"
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        status = migrations.read_status(conn, migrations.discover(directory))

    assert status.drifted == []


def test_two_concurrent_upgrades_apply_each_migration_once(empty_db_url):
    env = {**os.environ, "DATABASE_URL": empty_db_url, "FLASK_APP": "wsgi"}
    command = [sys.executable, "-m", "flask", "db", "upgrade"]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]

    assert [process.returncode for process in processes] == [0, 0]
    assert sum("applied 0001_users" in output for output in outputs) == 1
    assert sum("database is up to date" in output for output in outputs) == 1
    with _connect(empty_db_url) as conn:
        versions = [row["version"] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in migrations.discover()]


def _cli(url: str, *args: str, migrations_dir: Path | None = None):
    config = {"DATABASE_URL": url}
    if migrations_dir:
        config["MIGRATIONS_DIR"] = str(migrations_dir)
    app = create_app(config)
    try:
        return app.test_cli_runner().invoke(args=list(args))
    finally:
        resources_of(app).pool.close()


def test_status_exits_1_while_pending_and_0_when_current(empty_db_url):
    pending = _cli(empty_db_url, "db", "status")
    upgraded = _cli(empty_db_url, "db", "upgrade")
    current = _cli(empty_db_url, "db", "status")

    assert pending.exit_code == 1
    assert "0001_users" in pending.output and "pending" in pending.output
    assert upgraded.exit_code == 0, upgraded.output
    assert current.exit_code == 0, current.output
    assert "pending: 0" in current.output


def test_downgrade_command_rolls_back_one_by_default(empty_db_url):
    _cli(empty_db_url, "db", "upgrade")
    result = _cli(empty_db_url, "db", "downgrade")

    assert result.exit_code == 0, result.output
    newest, previous = migrations.discover()[-1], migrations.discover()[-2]
    assert f"rolled back {newest.label}" in result.output
    with _connect(empty_db_url) as conn:
        status = migrations.read_status(conn, migrations.discover())
    assert status.current == previous.version
    assert [m.label for m in status.pending] == [newest.label]


def test_verify_command_names_the_edited_file_and_lists_extensions(empty_db_url, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    _cli(empty_db_url, "db", "upgrade", migrations_dir=directory)
    clean = _cli(empty_db_url, "db", "verify", migrations_dir=directory)
    (directory / "0001_users.up.sql").write_text("-- rewritten\n")
    drifted = _cli(empty_db_url, "db", "verify", migrations_dir=directory)

    assert clean.exit_code == 0, clean.output
    assert (
        "extension pg_trgm: " in clean.output
        and "not installed" not in clean.output.split("pg_trgm")[1].splitlines()[0]
    )
    assert drifted.exit_code == 1
    assert "DRIFTED: 0001_users" in drifted.output


def test_new_command_creates_the_next_numbered_pair(empty_db_url, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    result = _cli(empty_db_url, "db", "new", "Add user notes!", migrations_dir=directory)

    assert result.exit_code == 0, result.output
    number = f"{migrations.discover()[-1].version + 1:04d}"
    assert (directory / f"{number}_add_user_notes.up.sql").exists()
    assert (directory / f"{number}_add_user_notes.down.sql").exists()
    assert migrations.discover(directory)[-1].label == f"{number}_add_user_notes"


def test_every_migration_also_runs_with_psql(empty_db_url):
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", empty_db_url]
    for migration in migrations.discover():
        result = subprocess.run(
            [*psql, "-f", str(migration.up_path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    with _connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM time_zones").fetchone()["n"] > 300
