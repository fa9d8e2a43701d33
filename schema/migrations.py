"""A small migration runner: numbered plain-SQL files, checksums, an advisory lock.

Files live in sql/migrations as NNNN_name.up.sql and NNNN_name.down.sql and also
run with psql. Each file runs in its own transaction together with its row in
schema_migrations, so a failure leaves nothing half-applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from config import DEFAULT_MIGRATIONS_DIR
from db.queries import fetch_scalar
from repositories import schema_migrations
from schema.statements import split_statements

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(DEFAULT_MIGRATIONS_DIR)
# Any fixed 64-bit number: every runner of this schema must use the same one.
LOCK_KEY = 7_311_208_554_020_133_001
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")

Report = Callable[[str], None]


class MigrationError(RuntimeError):
    """A migration could not be found, locked, applied or rolled back."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path | None
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass
class MigrationStatus:
    applied: list[dict] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)  # applied files edited since
    missing: list[str] = field(default_factory=list)  # applied, file gone

    @property
    def current(self) -> int | None:
        return self.applied[-1]["version"] if self.applied else None

    @property
    def ok(self) -> bool:
        return not (self.pending or self.drifted or self.missing)


def file_checksum(path: Path) -> str:
    """sha256 of the file with line endings normalised (a checkout on Windows is no drift)."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in the directory, by version; rejects gaps in the naming rules."""
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: expected NNNN_name.up.sql or NNNN_name.down.sql")
        version, name, direction = int(match[1]), match[2], match[3]
        target = ups if direction == "up" else downs
        if version in target:
            raise MigrationError(f"two {direction} files for version {version:04d}")
        target[version] = (name, path) if direction == "up" else path
    orphans = sorted(set(downs) - set(ups))
    if orphans:
        raise MigrationError(f"down file without an up file for version {orphans[0]:04d}")
    return [
        Migration(version, name, path, downs.get(version), file_checksum(path))
        for version, (name, path) in sorted(ups.items())
    ]


def read_status(conn: psycopg.Connection, migrations: list[Migration]) -> MigrationStatus:
    """Compare the files with schema_migrations."""
    applied = schema_migrations.list_applied(conn)
    by_version = {m.version: m for m in migrations}
    status = MigrationStatus(applied=applied)
    for row in applied:
        migration = by_version.get(row["version"])
        if migration is None:
            status.missing.append(f"{row['version']:04d}_{row['name']}")
        elif migration.checksum != row["checksum"]:
            status.drifted.append(migration.label)
    done = {row["version"] for row in applied}
    status.pending = [m for m in migrations if m.version not in done]
    return status


@contextmanager
def migration_lock(conn: psycopg.Connection, timeout: float = 60.0) -> Iterator[None]:
    """Hold the session advisory lock so two runners never apply the same file."""
    deadline = time.monotonic() + timeout
    while not fetch_scalar(conn, "SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)):
        if time.monotonic() > deadline:
            raise MigrationError(f"another migration run held the lock for {timeout:.0f} s")
        time.sleep(0.2)
    try:
        yield
    finally:
        fetch_scalar(conn, "SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def upgrade(
    conn: psycopg.Connection,
    migrations: list[Migration],
    to: int | None = None,
    dry_run: bool = False,
    report: Report = log.info,
) -> list[Migration]:
    """Apply pending migrations (up to version `to`); returns those applied."""
    with migration_lock(conn):
        schema_migrations.ensure_table(conn)
        status = read_status(conn, migrations)
        if to is not None and status.current is not None and to < status.current:
            raise MigrationError(f"--to {to} is below the current version {status.current}")
        todo = [m for m in status.pending if to is None or m.version <= to]
        for migration in todo:
            if dry_run:
                report(f"would apply {migration.label}")
                continue
            elapsed_ms = _run_file(conn, migration.up_path)
            report(f"applied {migration.label} in {elapsed_ms} ms")
        return todo


def downgrade(
    conn: psycopg.Connection,
    migrations: list[Migration],
    steps: int = 1,
    dry_run: bool = False,
    report: Report = log.info,
) -> list[Migration]:
    """Roll back the newest `steps` applied migrations with their down files."""
    if steps < 0:
        raise MigrationError("the number of migrations to roll back must be >= 0")
    by_version = {m.version: m for m in migrations}
    with migration_lock(conn):
        applied = schema_migrations.list_applied(conn)
        undone = []
        for row in reversed(applied[max(0, len(applied) - steps) :]):
            migration = by_version.get(row["version"])
            if migration is None or migration.down_path is None:
                raise MigrationError(f"no down file for version {row['version']:04d}")
            if dry_run:
                report(f"would roll back {migration.label}")
            else:
                _run_file(conn, migration.down_path, undo_version=migration.version)
                report(f"rolled back {migration.label}")
            undone.append(migration)
        return undone


def _run_file(conn: psycopg.Connection, path: Path, undo_version: int | None = None) -> int:
    """Run one file and its schema_migrations change in a single transaction."""
    script = path.read_text()
    started = time.perf_counter()
    with conn.transaction():
        for statement in split_statements(script):
            try:
                conn.execute(statement.text)
            except psycopg.Error as error:
                raise MigrationError(_describe_failure(path, statement, error)) from error
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        if undo_version is not None:
            schema_migrations.remove_applied(conn, undo_version)
        else:
            version, name = _FILE_NAME.match(path.name).group(1, 2)
            schema_migrations.record_applied(
                conn, int(version), name, file_checksum(path), elapsed_ms
            )
    return elapsed_ms


def _describe_failure(path: Path, statement, error: psycopg.Error) -> str:
    line = statement.line
    position = error.diag.statement_position
    if position:
        line += statement.text[: int(position) - 1].count("\n")
    message = f"{path.name} line {line}: {error.diag.message_primary or error}"
    if error.diag.context:
        message += f" ({error.diag.context.splitlines()[0]})"
    return message + "; the migration was rolled back"


def create_files(name: str, directory: Path = MIGRATIONS_DIR) -> tuple[Path, Path]:
    """Create the next numbered up/down pair for `name`; returns both paths."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not slug:
        raise MigrationError("a migration needs a name made of letters or digits")
    existing = discover(directory)
    version = (existing[-1].version + 1) if existing else 1
    up = directory / f"{version:04d}_{slug}.up.sql"
    down = directory / f"{version:04d}_{slug}.down.sql"
    up.write_text(f"-- {name.strip()}\n\n")
    down.write_text(f"-- Undo {version:04d}: {name.strip()}\n\n")
    return up, down
