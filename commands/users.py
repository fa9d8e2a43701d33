"""`flask users …`: bulk import from and export to a system of record, as files.

`users import` is `POST /users/import` from a local file (imports/sync.py: the same
checks, counts and single transaction); `users export` writes the live users as a CSV
that imports back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click
import psycopg
from flask import Flask, current_app
from flask.cli import AppGroup
from psycopg_pool import ConnectionPool

from config import Settings
from db.transactions import transaction
from imports import rows as import_rows
from imports.sync import ImportResult, RepeatedExternalId, import_users
from repositories import user_exports

users_group = AppGroup("users", help="Users: bulk import from and export to a system of record.")
_EXTENSION = "birthday_user_commands"
CHUNK_BYTES = 64 * 1024
READERS = {"csv": import_rows.csv_rows, "ndjson": import_rows.ndjson_rows}
NDJSON_SUFFIXES = (".ndjson", ".jsonl")


@dataclass(frozen=True)
class UserCommandResources:
    """What the commands work with: the app's settings and pool."""

    settings: Settings
    pool: ConnectionPool


def init_app(app: Flask, resources: UserCommandResources) -> None:
    """Register the `users` command group on the app, with what its commands use."""
    app.extensions[_EXTENSION] = resources
    app.cli.add_command(users_group)


def _resources() -> UserCommandResources:
    return current_app.extensions[_EXTENSION]


def _pool() -> ConnectionPool:
    pool = _resources().pool
    pool.open()
    return pool


@users_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format",
    "format_",
    type=click.Choice(sorted(READERS)),
    help="The file's format [default: by its extension, .ndjson or .jsonl, else csv].",
)
@click.option(
    "--delete-missing",
    is_flag=True,
    help="Full sync: delete live users whose external_id is not in the file.",
)
@click.option("--dry-run", is_flag=True, help="Check and count; write nothing.")
def import_command(
    file: BinaryIO, format_: str | None, delete_missing: bool, dry_run: bool
) -> None:
    """Create, update (by external_id, else email) and optionally delete users from FILE,
    CSV with a header row or NDJSON (`-`: stdin), streamed, in one transaction.

    Prints the result as JSON, as POST /users/import answers. IMPORT_MAX_ROWS applies;
    IMPORT_MAX_BYTES, the limit of an HTTP body, does not. Exit 0 when applied (invalid
    rows are listed in `errors`); 1 when FILE is not an import, and nothing is written.
    """
    settings = _resources().settings
    reader = READERS[format_ or _format_of(file)]
    with _progress(_size(file)) as advance:
        rows = reader(_chunks(file, advance), settings.import_max_rows)
        try:
            with transaction(_pool()) as conn:
                result = import_users(
                    conn,
                    rows,
                    datetime.now(UTC),
                    settings.send_time,
                    dry_run=dry_run,
                    delete_missing=delete_missing,
                    timeout=settings.import_timeout,
                )
        except import_rows.BodyProblem as problem:
            raise _not_an_import(problem.row, problem.field, problem.message) from problem
        except RepeatedExternalId as repeated:
            raise _not_an_import(repeated.row, "external_id", "also on an earlier row") from None
        except psycopg.errors.QueryCanceled as error:
            raise click.ClickException(
                f"a statement ran past IMPORT_TIMEOUT ({settings.import_timeout}; set it higher"
                " for this command); nothing was imported"
            ) from error
    _report(result)


def _format_of(file: BinaryIO) -> str:
    """ndjson for a .ndjson or .jsonl file, else csv (stdin included)."""
    suffix = Path(str(getattr(file, "name", ""))).suffix.lower()
    return "ndjson" if suffix in NDJSON_SUFFIXES else "csv"


def _size(file: BinaryIO) -> int | None:
    """The file's size in bytes when it is a regular file (stdin redirected from one
    included); None for a pipe or a terminal."""
    try:
        status = os.fstat(file.fileno())
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


@contextmanager
def _progress(size: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar of the bytes read, on stderr, when the size is known."""
    if size is None:
        yield lambda _bytes: None
        return
    with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
        yield bar.update


def _chunks(file: BinaryIO, advance: Callable[[int], None]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        advance(len(chunk))
        yield chunk


def _not_an_import(row: int, field: str, message: str) -> click.ClickException:
    return click.ClickException(f"row {row}, {field}: {message}; nothing was imported")


def _report(result: ImportResult) -> None:
    """The result on stdout, one JSON object; a line on stderr when rows were refused."""
    click.echo(json.dumps(dataclasses.asdict(result)))
    if result.error_count:
        click.echo(f"{result.error_count} row(s) refused; see errors", err=True)


@users_group.command("export")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (replaced once the export is complete) [default: stdout].",
)
def export_command(output: str | None) -> None:
    """Write the live users as CSV: a header of the import's fields, one row per user in
    order of creation, dates YYYY-MM-DD. `users import` reads it back unchanged."""
    try:
        with _output(output) as out, transaction(_pool()) as conn:
            count = user_exports.write_csv(conn, out)
    except OSError as error:
        raise click.ClickException(
            f"cannot write {output or 'stdout'}: {error.strerror}"
        ) from error
    click.echo(f"exported {count} user(s)", err=True)


@contextmanager
def _output(path: str | None) -> Iterator[BinaryIO]:
    """Stdout, or a file beside `path` that replaces it once complete: an export cut
    short leaves no partial file that an import could take for the whole."""
    if path is None:
        with click.open_file("-", "wb") as stdout:  # left open
            yield stdout
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as out:
            yield out
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
