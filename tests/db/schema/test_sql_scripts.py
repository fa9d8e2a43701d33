"""Every operator script in sql/ runs clean under psql on a migrated database."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

SQL_DIR = Path(__file__).resolve().parents[3] / "sql"
SCRIPTS = sorted(p for p in SQL_DIR.rglob("*.sql") if "migrations" not in p.parts)

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


def _psql(url: str, script: Path, *variables: str) -> subprocess.CompletedProcess:
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)]
    for variable in variables:
        args[1:1] = ["-v", variable]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture
def role_name(fresh_db_url: str) -> Iterator[str]:
    """For scripts that create a role (sql/roles/): a name of this test's own, since roles
    belong to the whole server; the role is dropped afterwards if one was created."""
    name = f"birthday_app_test_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(SQL_DIR)))
def test_script_runs_clean_under_psql(fresh_db_url, role_name, script):
    result = _psql(fresh_db_url, script, f"app_role={role_name}")

    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr


def test_seed_script_is_safe_to_run_twice(fresh_db_url):
    first = _psql(fresh_db_url, SQL_DIR / "seed.sql")
    second = _psql(fresh_db_url, SQL_DIR / "seed.sql")

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    with psycopg.connect(fresh_db_url) as conn:
        count = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        zones = conn.execute("SELECT count(DISTINCT timezone) FROM users").fetchone()[0]
    assert count == 12
    assert zones >= 11


def test_partitions_script_dry_run_changes_nothing(fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        before = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'message_logs'::regclass"
        ).fetchone()[0]

    result = _psql(fresh_db_url, SQL_DIR / "partitions.sql", "ahead=20", "dry_run=true")

    with psycopg.connect(fresh_db_url) as conn:
        after = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'message_logs'::regclass"
        ).fetchone()[0]
    assert result.returncode == 0, result.stderr
    assert "message_logs_y" in result.stdout
    assert after == before


def test_partitions_script_creates_the_months_asked_for(fresh_db_url):
    result = _psql(fresh_db_url, SQL_DIR / "partitions.sql", "ahead=15")

    with psycopg.connect(fresh_db_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'message_logs'::regclass"
        ).fetchone()[0]
    assert result.returncode == 0, result.stderr
    assert count == 16 + 1  # current month + 15 ahead, and DEFAULT
