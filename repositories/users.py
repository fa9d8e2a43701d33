"""The users table: live users are those with deleted_at IS NULL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, time
from functools import cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from db.queries import (
    LARGEST_OFFSET,
    Count,
    count_up_to,
    execute,
    fetch_all,
    fetch_optional,
    fetch_scalar,
    fetch_slice,
)
from domain.occasions import OCCASIONS, Occasions
from errors import EmailTaken, ExternalIdTaken, InvalidField, UserNotFound
from repositories import occasion_sql

COLUMNS = (
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "timezone",
    *OCCASIONS.date_fields,
    "location_city",
    "location_country",
    "locale",
    "unsubscribed",
    "created_at",
    "updated_at",
)
# Written by PUT, PATCH and POST; `unsubscribed` only through unsubscribe/resubscribe.
WRITABLE = tuple(c for c in COLUMNS if c not in ("id", "created_at", "updated_at", "unsubscribed"))
_RETURNING = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))

# Which field a violated constraint is about, for a 422 that names it.
_CONSTRAINT_FIELDS = {
    "users_timezone_fkey": (
        "timezone",
        "time zone not supported: use an IANA name such as America/New_York or Asia/Kathmandu",
    ),
    "users_first_name_length": ("first_name", "must be 1 to 100 characters"),
    "users_last_name_length": ("last_name", "must be 1 to 100 characters"),
    "users_email_format": ("email", "not a valid email address"),
    "users_has_occasion": (OCCASIONS.date_fields[0], OCCASIONS.required_message),
    # Each occasion's date column has its range check users_<name>_range, where
    # <name> is the column without _date (migration 0001, docs/extending.md).
    **{
        f"users_{field.removesuffix('_date')}_range": (field, "must not be before 1900-01-01")
        for field in OCCASIONS.date_fields
    },
    "users_location_city_length": ("location_city", "must be at most 100 characters"),
    "users_location_country_length": ("location_country", "must be at most 100 characters"),
    "users_locale_format": ("locale", "must be a BCP 47 language tag such as en, fr or pt-BR"),
    "users_external_id_format": (
        "external_id",
        "must be 1 to 255 characters without control characters",
    ),
}


@contextmanager
def _constraint_errors(email: str | None) -> Iterator[None]:
    """Turn constraint violations into domain errors that name the field."""
    try:
        yield
    except pg_errors.UniqueViolation as error:
        if error.diag.constraint_name == "users_email_live_key":
            raise EmailTaken(email or "") from error
        if error.diag.constraint_name == "users_external_id_live_key":
            raise ExternalIdTaken() from error
        raise
    except (pg_errors.ForeignKeyViolation, pg_errors.CheckViolation) as error:
        known = _CONSTRAINT_FIELDS.get(error.diag.constraint_name or "")
        if known is None:
            raise
        field, message = known
        raise InvalidField(message, field=field) from error


# The statements of every request (GET, POST) are rendered to text once, not composed
# and quoted again on each call: psycopg then finds their parsed form in its cache.
@cache
def _insert_statement(columns: tuple[str, ...]) -> str:
    return (
        sql.SQL("INSERT INTO users ({}) VALUES ({}) RETURNING {}")
        .format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(map(sql.Placeholder, columns)),
            _RETURNING,
        )
        .as_string()
    )


# A new user and their greetings in one statement: each occasion the user has, on its
# next date in their zone at SEND_TIME local, unless the address is suppressed. What
# the general planning statement (repositories/occurrences.py) also looks for, a
# pending or finished greeting of the user, cannot exist for a user this statement
# creates, nor can a concurrent change of them: so neither is read.
_INSERT_PLANNED = """
WITH u AS ({insert}), planned AS (
    INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                              scheduled_send_time, next_attempt_at, idempotency_key)
    SELECT user_id, message_type, occasion_date, {text}, send_at, send_at,
           message_idempotency_key(user_id, message_type, occasion_date)
    FROM (
        SELECT u.id AS user_id, u.first_name, u.last_name, o.message_type, d.occasion_date,
               local_send_instant(d.occasion_date, %(send_time)s::time, z.compute_as) AS send_at
        FROM u
        JOIN time_zones z ON z.name = u.timezone
        CROSS JOIN LATERAL {occasions}
        CROSS JOIN LATERAL (
            SELECT next_occasion_date(
                       o.original, (%(now)s::timestamptz AT TIME ZONE z.compute_as)::date,
                       o.leap_day) AS occasion_date
        ) AS d
        WHERE o.original IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = u.email)
    ) AS due
)
SELECT * FROM u
"""


@cache
def _insert_planned_statement(columns: tuple[str, ...], occasions: Occasions = OCCASIONS) -> str:
    return (
        sql.SQL(_INSERT_PLANNED)
        .format(
            insert=sql.SQL(_insert_statement(columns)),
            text=occasion_sql.greeting_text(occasions, "message_type", "first_name", "last_name"),
            occasions=occasion_sql.user_occasions(occasions),
        )
        .as_string()
    )


def insert_planned(
    conn: psycopg.Connection, data: Mapping[str, Any], now: datetime, send_time: time
) -> dict:
    """Insert a user from its writable fields and plan their greetings, in one
    statement (one round trip); returns the stored row."""
    columns = tuple(name for name in WRITABLE if name in data)
    params = {name: data[name] for name in columns}
    with _constraint_errors(data.get("email")):
        return fetch_optional(
            conn,
            _insert_planned_statement(columns),
            {**params, "now": now, "send_time": send_time},
        )


_GET_LIVE = sql.SQL("SELECT {} FROM users WHERE id = %(id)s AND deleted_at IS NULL").format(
    _RETURNING
)
_GET_LIVE_STATEMENTS = {
    False: _GET_LIVE.as_string(),
    True: (_GET_LIVE + sql.SQL(" FOR UPDATE")).as_string(),
}


def insert(conn: psycopg.Connection, data: Mapping[str, Any]) -> dict:
    """Insert a user from its writable fields; returns the stored row."""
    columns = tuple(name for name in WRITABLE if name in data)
    with _constraint_errors(data.get("email")):
        return fetch_optional(
            conn, _insert_statement(columns), {name: data[name] for name in columns}
        )


def get_live(conn: psycopg.Connection, user_id: UUID, for_update: bool = False) -> dict:
    """A live user; raises UserNotFound for unknown or deleted ids."""
    row = fetch_optional(conn, _GET_LIVE_STATEMENTS[for_update], {"id": user_id})
    if row is None:
        raise UserNotFound(user_id)
    return row


def update(conn: psycopg.Connection, user_id: UUID, changes: Mapping[str, Any]) -> dict:
    """Set the given writable fields of a live user; returns the new row."""
    columns = [name for name in WRITABLE if name in changes]
    if not columns:
        return get_live(conn, user_id)
    query = sql.SQL(
        "UPDATE users SET {} WHERE id = %(id)s AND deleted_at IS NULL RETURNING {}"
    ).format(
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
            for name in columns
        ),
        _RETURNING,
    )
    with _constraint_errors(changes.get("email")):
        row = fetch_optional(conn, query, {"id": user_id, **{n: changes[n] for n in columns}})
    if row is None:
        raise UserNotFound(user_id)
    return row


_SET_UNSUBSCRIBED = sql.SQL(
    "UPDATE users SET unsubscribed = %(occasions)s::text[]"
    " WHERE id = %(id)s AND deleted_at IS NULL RETURNING {}"
).format(_RETURNING)


def set_unsubscribed(conn: psycopg.Connection, user_id: UUID, occasions: list[str]) -> dict:
    """The occasions a live user is opted out of become `occasions`; the new row."""
    row = fetch_optional(conn, _SET_UNSUBSCRIBED, {"id": user_id, "occasions": occasions})
    if row is None:
        raise UserNotFound(user_id)
    return row


def live_ids_with_email(conn: psycopg.Connection, email: str) -> list[UUID]:
    """The live user with `email` (any case), if any, as a list."""
    rows = fetch_all(
        conn,
        "SELECT id FROM users WHERE email = lower(%(email)s) AND deleted_at IS NULL",
        {"email": email},
    )
    return [row["id"] for row in rows]


def soft_delete(conn: psycopg.Connection, user_id: UUID) -> None:
    """Mark a live user deleted; raises UserNotFound when there is none."""
    deleted = execute(
        conn,
        "UPDATE users SET deleted_at = now() WHERE id = %(id)s AND deleted_at IS NULL",
        {"id": user_id},
    )
    if not deleted:
        raise UserNotFound(user_id)


SEARCH = sql.SQL("users_search_text(first_name, last_name, email) LIKE %(pattern)s")
# A search first asks the trigram index for up to this many matches, keys only: when
# there are no more, they are sorted and the page read by id (a rare word, or none: a
# millisecond, where walking the window below took 10). Beyond, matches are common,
# and walking users in creation order finds a page in a few thousand rows...
SEARCH_RARE_UP_TO = 200
# ...up to this many; when fewer match there, the trigram index finds every match
# (cheap when they are rare), so no search walks the whole table in order.
SEARCH_WINDOW = 5_000


def _list_filter(
    search: str | None,
    timezone: str | None,
    after: tuple[datetime, UUID] | None = None,
    external_id: str | None = None,
) -> tuple[sql.Composable, dict]:
    conditions = [sql.SQL("deleted_at IS NULL")]
    params: dict[str, Any] = {}
    if external_id is not None:
        # users_external_id_live_key answers it: at most one live user.
        conditions.append(sql.SQL("external_id = %(external_id)s AND external_id IS NOT NULL"))
        params["external_id"] = external_id
    if search:
        # Same expression as users_search_trgm_idx, so the trigram index answers it.
        conditions.append(SEARCH)
        params["pattern"] = _search_pattern(search)
    if timezone:
        conditions.append(sql.SQL("timezone = %(timezone)s"))
        params["timezone"] = timezone
    if after is not None:
        conditions.append(sql.SQL("(created_at, id) > (%(after_created)s, %(after_id)s)"))
        params.update(after_created=after[0], after_id=after[1])
    return sql.SQL(" AND ").join(conditions), params


def list_live(
    conn: psycopg.Connection,
    search: str | None,
    timezone: str | None,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, UUID] | None = None,
    external_id: str | None = None,
) -> tuple[list[dict], bool]:
    """Up to `limit` live users in creation order (created_at, id), and whether more
    follow. `after` is the (created_at, id) of the last user already seen: the page
    then starts right after it, read from the index without skipping rows."""
    order = sql.SQL("created_at, id")
    if search and external_id is None:
        return _search_live(conn, search, timezone, limit, offset, after)
    where, params = _list_filter(search, timezone, after, external_id)
    return fetch_slice(conn, "users", _RETURNING, where, order, params, limit, offset)


def _search_live(
    conn: psycopg.Connection,
    search: str,
    timezone: str | None,
    limit: int,
    offset: int,
    after: tuple[datetime, UUID] | None,
) -> tuple[list[dict], bool]:
    base, params = _list_filter(None, timezone, after)
    params = {**params, "pattern": _search_pattern(search)}
    rare = _rare_matches(conn, base, params, offset, limit)
    if rare is not None:
        return rare
    wanted = {**params, "window": SEARCH_WINDOW, "wanted": min(offset + limit + 1, LARGEST_OFFSET)}
    in_window = sql.SQL(
        "SELECT {columns} FROM (SELECT * FROM users WHERE {base}"
        " ORDER BY created_at, id LIMIT %(window)s) AS window_rows"
        " WHERE {search} ORDER BY created_at, id LIMIT %(wanted)s"
    )
    rows = fetch_all(conn, in_window.format(columns=_RETURNING, base=base, search=SEARCH), wanted)
    if len(rows) < offset + limit + 1 and _window_is_full(conn, base, params):
        every_match = sql.SQL(
            "WITH matches AS MATERIALIZED (SELECT {columns} FROM users WHERE {base} AND {search})"
            " SELECT * FROM matches ORDER BY created_at, id LIMIT %(wanted)s"
        )
        rows = fetch_all(
            conn, every_match.format(columns=_RETURNING, base=base, search=SEARCH), wanted
        )
    return rows[offset : offset + limit], len(rows) > offset + limit


def _rare_matches(
    conn: psycopg.Connection, base: sql.Composable, params: dict, offset: int, limit: int
) -> tuple[list[dict], bool] | None:
    """The page when at most SEARCH_RARE_UP_TO users match (found by the trigram
    index, keys only, sorted here), else None."""
    # Planned as if every match were wanted (a MATERIALIZED CTE, read only as far as the
    # LIMIT): under the LIMIT alone, the planner's guess at a LIKE's selectivity made a
    # sequential scan look cheaper, which read all the users when none matched (0.8 s).
    found = sql.SQL(
        "WITH matches AS MATERIALIZED (SELECT created_at, id FROM users WHERE {} AND {})"
        " SELECT * FROM matches LIMIT %(rare)s"
    )
    keys = fetch_all(conn, found.format(base, SEARCH), {**params, "rare": SEARCH_RARE_UP_TO + 1})
    if len(keys) > SEARCH_RARE_UP_TO:
        return None
    keys.sort(key=lambda key: (key["created_at"], key["id"]))
    page = [key["id"] for key in keys[offset : offset + limit]]
    if not page:
        return [], False
    by_id = sql.SQL(
        "SELECT {} FROM users WHERE id = ANY(%(ids)s) AND deleted_at IS NULL"
        " ORDER BY created_at, id"
    )
    rows = fetch_all(conn, by_id.format(_RETURNING), {"ids": page})
    return rows, len(keys) > offset + limit


def _window_is_full(conn: psycopg.Connection, base: sql.Composable, params: dict) -> bool:
    scanned = sql.SQL(
        "SELECT count(*) FROM (SELECT FROM users WHERE {} ORDER BY created_at, id"
        " LIMIT %(window)s) AS window_rows"
    )
    return fetch_scalar(conn, scanned.format(base), {**params, "window": SEARCH_WINDOW}) == (
        SEARCH_WINDOW
    )


def count_live(
    conn: psycopg.Connection,
    search: str | None,
    timezone: str | None,
    exact_up_to: int,
    external_id: str | None = None,
) -> Count:
    """How many live users match: exact up to `exact_up_to`, estimated above."""
    where, params = _list_filter(search, timezone, external_id=external_id)
    return count_up_to(conn, "users", where, params, exact_up_to, plan_without_limit=bool(search))


def _search_pattern(search: str) -> str:
    return f"%{_escape_like(search.lower())}%"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def any_exist(conn: psycopg.Connection) -> bool:
    """Whether the table holds any user, live or deleted."""
    return fetch_scalar(conn, "SELECT EXISTS (SELECT 1 FROM users)")


def delete_all_with_messages(conn: psycopg.Connection) -> None:
    """Empty users and message_logs (development reset; never called by the service)."""
    execute(conn, "TRUNCATE message_logs, users")
