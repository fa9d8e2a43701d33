"""The idempotency_keys table: keys already processed (or being processed), by scope.

A row with a NULL response_status is a claim: its request is still being handled.
The unique constraint (scope, key) decides every race: of two concurrent inserts
of the same key, exactly one returns a row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from db.queries import execute, fetch_all, fetch_optional, fetch_scalar

_FIELDS = "scope, key, request_fingerprint, response_status, response_body, created_at"


def find(conn: psycopg.Connection, scope: str, key: str) -> dict | None:
    """The key's row, processed or in progress, or None."""
    return fetch_optional(
        conn,
        # _FIELDS is a constant of this module; the values travel as parameters.
        f"SELECT {_FIELDS} FROM idempotency_keys WHERE scope = %(scope)s AND key = %(key)s",  # noqa: S608
        {"scope": scope, "key": key},
    )


def claim(
    conn: psycopg.Connection,
    scope: str,
    key: str,
    fingerprint: str,
    stale_after: timedelta,
    retention: timedelta,
) -> datetime | None:
    """Start processing a key; the claim's created_at when this caller owns it now, else None.

    An unfinished claim older than `stale_after` (its process died) is taken over,
    and so is any key older than `retention`: it has expired, even if the cleanup
    has not deleted it yet. The returned created_at identifies this claim: a
    takeover always writes a later one, so complete() and release() can tell a
    claim that is still theirs from one another request has taken.
    """
    row = fetch_optional(
        conn,
        """
        INSERT INTO idempotency_keys (scope, key, request_fingerprint)
        VALUES (%(scope)s, %(key)s, %(fingerprint)s)
        ON CONFLICT (scope, key) DO UPDATE
            SET request_fingerprint = EXCLUDED.request_fingerprint, created_at = now(),
                response_status = NULL, response_body = NULL, completed_at = NULL
            WHERE (idempotency_keys.response_status IS NULL
                   AND idempotency_keys.created_at < now() - %(stale_after)s)
               OR idempotency_keys.created_at < now() - %(retention)s
        RETURNING created_at
        """,
        {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "stale_after": stale_after,
            "retention": retention,
        },
    )
    return None if row is None else row["created_at"]


def complete(
    conn: psycopg.Connection,
    scope: str,
    key: str,
    claimed_at: datetime,
    status: int,
    body: Any,
    fingerprint: str | None = None,
) -> bool:
    """Store the result of this caller's claim; False if the claim is gone or was taken over.

    `fingerprint`, when given, replaces the claim's: for a request whose fingerprint is
    known only once its body has been read (a streamed import).
    """
    updated = execute(
        conn,
        """
        UPDATE idempotency_keys
        SET response_status = %(status)s, response_body = %(body)s, completed_at = now(),
            request_fingerprint = COALESCE(%(fingerprint)s, request_fingerprint)
        WHERE scope = %(scope)s AND key = %(key)s AND response_status IS NULL
          AND created_at = %(claimed_at)s
        """,
        {
            "scope": scope,
            "key": key,
            "claimed_at": claimed_at,
            "status": status,
            "body": Jsonb(body),
            "fingerprint": fingerprint,
        },
    )
    return updated == 1


def release(conn: psycopg.Connection, scope: str, key: str, claimed_at: datetime) -> None:
    """Drop this caller's unfinished claim so the request can be sent again."""
    execute(
        conn,
        "DELETE FROM idempotency_keys WHERE scope = %(scope)s AND key = %(key)s"
        " AND response_status IS NULL AND created_at = %(claimed_at)s",
        {"scope": scope, "key": key, "claimed_at": claimed_at},
    )


def delete_older_than(conn: psycopg.Connection, cutoff: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` keys created before `cutoff`; returns how many."""
    return execute(
        conn,
        """
        DELETE FROM idempotency_keys
        WHERE id IN (
            SELECT id FROM idempotency_keys
            WHERE created_at < %(cutoff)s
            ORDER BY created_at
            LIMIT %(batch_size)s
            FOR UPDATE SKIP LOCKED
        )
        """,
        {"cutoff": cutoff, "batch_size": batch_size},
    )


def stats(conn: psycopg.Connection) -> dict[str, Any]:
    """Count, oldest creation time and count per scope."""
    by_scope = fetch_all(
        conn, "SELECT scope, count(*) AS count FROM idempotency_keys GROUP BY scope ORDER BY scope"
    )
    oldest = fetch_scalar(conn, "SELECT min(created_at) FROM idempotency_keys")
    return {
        "count": sum(row["count"] for row in by_scope),
        "oldest": oldest,
        "by_scope": {row["scope"]: row["count"] for row in by_scope},
    }


def probe(conn: psycopg.Connection) -> bool:
    """The store answers a read (health check)."""
    fetch_scalar(conn, "SELECT 1 FROM idempotency_keys LIMIT 1")
    return True
