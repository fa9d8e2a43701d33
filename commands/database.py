"""`flask db …`: create, migrate, inspect, partition, seed and check the database."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import click
import psycopg
from flask import Flask, current_app
from flask.cli import AppGroup
from psycopg_pool import ConnectionPool

from config import Settings
from db.pool import connect
from db.transactions import transaction
from operations import health, time_zones
from operations import partitions as partition_upkeep
from repositories import idempotency_keys, server
from schema import admin, migrations
from seed import loader as seed
from users import idempotent_requests as idempotency

db_group = AppGroup("db", help="Database: create, migrate, partitions, time zones, seed, health.")
_EXTENSION = "birthday_db_commands"


@dataclass(frozen=True)
class CommandResources:
    """What the commands work with: the app's settings, pool and migration files."""

    settings: Settings
    pool: ConnectionPool
    migrations: list[migrations.Migration]


def init_app(app: Flask, resources: CommandResources) -> None:
    """Register the `db` command group on the app, with what its commands use."""
    app.extensions[_EXTENSION] = resources
    app.cli.add_command(db_group)


def _resources() -> CommandResources:
    return current_app.extensions[_EXTENSION]


def _settings() -> Settings:
    return _resources().settings


def _migration_files() -> list[migrations.Migration]:
    return migrations.discover(Path(_settings().migrations_dir))


@contextmanager
def _admin_connection() -> Iterator[psycopg.Connection]:
    """An autocommit connection outside the pool, printing server notices."""
    try:
        conn = connect(_settings(), "birthday-cli", autocommit=True)
    except psycopg.OperationalError as error:
        raise click.ClickException(f"cannot connect to DATABASE_URL: {error}") from error
    conn.add_notice_handler(lambda diag: click.echo(f"NOTICE: {diag.message_primary}"))
    with conn:
        try:
            yield conn
        except migrations.MigrationError as error:
            raise click.ClickException(str(error)) from error


@db_group.command("create")
def create_command() -> None:
    """Create the database named in DATABASE_URL if it does not exist."""
    url = _settings().database_url
    created = admin.ensure_database(url)
    name = admin.database_name(url)
    click.echo(f"created database {name}" if created else f"database {name} exists")


@db_group.command("upgrade")
@click.option("--to", "to_version", type=int, help="Stop after this version.")
@click.option("--dry-run", is_flag=True, help="Print what would be applied.")
def upgrade_command(to_version: int | None, dry_run: bool) -> None:
    """Apply pending migrations, each in its own transaction."""
    with _admin_connection() as conn:
        applied = migrations.upgrade(
            conn, _migration_files(), to=to_version, dry_run=dry_run, report=click.echo
        )
    if not applied:
        click.echo("database is up to date")


@db_group.command("downgrade")
@click.argument("steps", type=click.IntRange(min=0), default=1)
@click.option("--all", "all_", is_flag=True, help="Roll back every applied migration.")
@click.option("--dry-run", is_flag=True, help="Print what would be rolled back.")
def downgrade_command(steps: int, all_: bool, dry_run: bool) -> None:
    """Roll back the newest STEPS migrations (default 1)."""
    with _admin_connection() as conn:
        if all_:
            steps = len(migrations.read_status(conn, _migration_files()).applied)
        undone = migrations.downgrade(
            conn, _migration_files(), steps=steps, dry_run=dry_run, report=click.echo
        )
    if not undone:
        click.echo("nothing to roll back")


@db_group.command("status")
def status_command() -> None:
    """List applied and pending migrations; exit 1 when any is pending or drifted."""
    with _admin_connection() as conn:
        status = migrations.read_status(conn, _migration_files())
    for row in status.applied:
        label = f"{row['version']:04d}_{row['name']}"
        state = "DRIFTED" if label in status.drifted else "applied"
        state = "MISSING FILE" if label in status.missing else state
        click.echo(f"{label:<40} {state:<12} {row['applied_at']:%Y-%m-%d %H:%M:%S} UTC")
    for migration in status.pending:
        click.echo(f"{migration.label:<40} pending")
    click.echo(f"current version: {status.current or 0}, pending: {len(status.pending)}")
    if not status.ok:
        sys.exit(1)


@db_group.command("verify")
def verify_command() -> None:
    """Check applied files are unchanged and report extensions; exit 1 on drift."""
    with _admin_connection() as conn:
        status = migrations.read_status(conn, _migration_files())
        extensions = server.installed_extensions(conn)
    for label in status.drifted:
        click.echo(f"DRIFTED: {label} was edited after it was applied")
    for label in status.missing:
        click.echo(f"MISSING: {label} is applied but its file is gone")
    for name, version in extensions.items():
        click.echo(f"extension {name}: {version or 'not installed'}")
    if status.drifted or status.missing:
        sys.exit(1)
    click.echo(f"{len(status.applied)} applied migration(s) match their files")


@db_group.command("new")
@click.argument("name")
def new_command(name: str) -> None:
    """Create the next numbered pair of migration files."""
    try:
        up, down = migrations.create_files(name, Path(_settings().migrations_dir))
    except migrations.MigrationError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"created {up}\ncreated {down}")


@db_group.command("partitions")
@click.option("--ahead", type=click.IntRange(min=0), help="Months ahead to create.")
@click.option("--retain", type=click.IntRange(min=1), help="Months of history to keep.")
@click.option("--dry-run", is_flag=True, help="Print what would change.")
def partitions_command(ahead: int | None, retain: int | None, dry_run: bool) -> None:
    """Create future message_logs partitions and drop those past retention."""
    settings = _settings()
    ahead = settings.partitions_ahead if ahead is None else ahead
    retain = settings.message_retention_months if retain is None else retain
    verb = "would " if dry_run else ""
    try:
        with _admin_connection() as conn:
            done = partition_upkeep.maintain(
                conn,
                ahead=ahead,
                retain_months=retain,
                today=date.today(),
                lock_timeout=settings.partition_lock_timeout,
                dry_run=dry_run,
            )
    except partition_upkeep.PartitionMaintenanceDeferred as deferred:
        raise click.ClickException(
            f"PARTITION_LOCK_TIMEOUT ({settings.partition_lock_timeout}): {deferred};"
            " try again later"
        ) from deferred
    for row in done.created:
        click.echo(f"{verb}create {row['partition_name']} (rows moved: {row['rows_moved']})")
    for row in done.dropped:
        click.echo(f"{verb}drop {row['partition_name']} (ended {row['range_end']})")
    click.echo("partitions are in order")


@db_group.command("health")
def health_command() -> None:
    """Print the database health report; exit 1 when unhealthy."""
    web = _resources()
    report = health.open_and_check_database(web.pool, web.migrations, web.settings)
    click.echo(json.dumps(report, indent=2, default=str))
    if report["status"] != "ok":
        sys.exit(1)


@db_group.command("seed")
@click.option("--users", "count", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--random-seed", type=int, default=42, show_default=True)
@click.option("--reset", is_flag=True, help="Delete existing users and messages first.")
def seed_command(count: int, random_seed: int, reset: bool) -> None:
    """Load deterministic users and message history (skipped if users exist)."""
    settings = _settings()
    with _admin_connection() as conn:
        if reset:
            seed.reset(conn)
        elif seed.has_users(conn):
            click.echo("users already present; not seeding (use --reset to start over)")
            return
        started = time.perf_counter()
        with click.progressbar(length=count, label=f"seeding {count} users") as bar:
            result = seed.seed_database(
                conn, count, random_seed, datetime.now(UTC), settings.send_time, bar.update
            )
        elapsed = time.perf_counter() - started
    click.echo(f"seeded {result.users} users and {result.messages} messages in {elapsed:.1f} s")


@db_group.command("cleanup-keys")
def cleanup_keys_command() -> None:
    """Delete Idempotency-Keys older than IDEMPOTENCY_KEY_RETENTION, in batches."""
    settings = _settings()
    pool = _resources().pool
    pool.open()
    deleted = idempotency.clean_up_expired(
        pool, datetime.now(UTC), settings.idempotency_key_retention
    )
    with transaction(pool) as conn:
        stats = idempotency_keys.stats(conn)
    click.echo(f"deleted {deleted} expired key(s); {stats['count']} left, oldest {stats['oldest']}")


@db_group.command("refresh-zones")
def refresh_zones_command() -> None:
    """Refresh time_zones from the server's tz database and re-time greetings that moved."""
    with _admin_connection() as conn:
        result = time_zones.refresh_zones(conn, _settings().send_time)
    click.echo(
        f"{result.zones_changed} time zone(s) added or changed;"
        f" {result.greetings_moved} scheduled greeting(s) moved to their new send time"
    )
