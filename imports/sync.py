"""Importing users from a system of record: stage, check, match, apply (set-based).

Rows upsert by external_id, else by email. A valid row of no live user creates one; a
row whose values differ updates its user (a changed name, zone or date re-plans the
user's greetings exactly as a PATCH does); an unchanged row touches nothing (no
updated_at, no greeting). With `delete_missing`, live users whose external_id no row
names are deleted and their pending greetings cancelled. Invalid rows are reported and
the valid ones applied. Joins its caller's transaction: an import is one transaction,
so one that fails (a body cut short, over a limit, an external_id twice) changes
nothing. `dry_run` applies everything in a savepoint, counts, and rolls it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import psycopg

from db.queries import set_statement_timeout
from errors import InvalidField
from planning import for_users as planning
from repositories import user_imports

ERROR_LIMIT = 1000
# Users re-planned or cancelled per statement (new users are planned in one).
PLAN_BATCH = 10_000


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    deleted: int
    error_count: int
    errors: list[dict] = field(default_factory=list)  # the first ERROR_LIMIT
    dry_run: bool = False


class RepeatedExternalId(InvalidField):
    def __init__(self, row: int) -> None:
        super().__init__(
            f"row {row}: this external_id is on an earlier row of the file",
            field="external_id",
            location="body",
        )
        self.row = row


def import_users(
    conn: psycopg.Connection,
    rows: Iterable[tuple[str | None, ...]],
    now: datetime,
    send_time: time,
    *,
    dry_run: bool = False,
    delete_missing: bool = False,
    timeout: timedelta | None = None,
) -> ImportResult:
    """Apply `rows` (imports.rows' FIELDS-ordered tuples) to the users; the counts.
    `timeout` (IMPORT_TIMEOUT) bounds each of the import's statements instead of the
    connection's statement timeout."""
    if timeout is not None:
        set_statement_timeout(conn, timeout)
    user_imports.stage(conn, rows)
    user_imports.check(conn, now)
    repeated = user_imports.repeated_external_id(conn)
    if repeated is not None:
        raise RepeatedExternalId(repeated)
    user_imports.match_users(conn)
    with conn.transaction(force_rollback=dry_run):
        created, updated, unchanged, deleted = _apply(conn, now, send_time, delete_missing)
        errors, error_count = user_imports.errors(conn, ERROR_LIMIT)
    return ImportResult(created, updated, unchanged, deleted, error_count, errors, dry_run)


def _apply(
    conn: psycopg.Connection, now: datetime, send_time: time, delete_missing: bool
) -> tuple[int, int, int, int]:
    matched = user_imports.matched_count(conn)
    # Matched rows first: the rows of users this import creates are then not compared.
    updated = user_imports.update_changed(conn)
    created = user_imports.insert_new(conn)
    deleted = user_imports.delete_missing(conn) if delete_missing else 0
    if created:
        new_users = user_imports.list_users_with_outcome(conn, "created")
        planning.plan_listed_users(conn, new_users, now, send_time)
    for users in user_imports.users_with_outcome(conn, "replanned", PLAN_BATCH):
        planning.replan_users(conn, users, now, send_time)
    for users in user_imports.users_with_outcome(conn, "deleted", PLAN_BATCH):
        planning.cancel_users(conn, users)
    return created, updated, matched - updated, deleted
