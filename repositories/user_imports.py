"""An import's staging table and the set-based statements that check and apply it.

The rows are COPYed into a temporary table (dropped at commit), checked there with one
UPDATE per rule (the first problem of a row is kept, with its field), matched to live
users by external_id, else by email, then applied with one INSERT … SELECT and one
UPDATE … FROM; users whose row did not change are not touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import sql

from db.queries import execute, fetch_all, fetch_one

# What an import row may hold, in the order rows are staged.
FIELDS = (
    "external_id",
    "first_name",
    "last_name",
    "email",
    "timezone",
    "birthday_date",
    "anniversary_date",
    "location_city",
    "location_country",
    "locale",
)
_CREATE = """
CREATE TEMPORARY TABLE import_rows (
    row_number bigint NOT NULL,
    external_id text, first_name text, last_name text, email text, timezone text,
    birthday_date text, anniversary_date text, location_city text, location_country text,
    locale text,
    birthday date, anniversary date,
    error_field text, error_message text,
    user_id uuid,
    outcome text  -- what applying the row did: created, updated, replanned
) ON COMMIT DROP
"""
_COPY = "COPY import_rows (row_number, {}) FROM STDIN".format(", ".join(FIELDS))


def stage(conn: psycopg.Connection, rows: Iterable[tuple[str | None, ...]]) -> int:
    """COPY `rows` (FIELDS-ordered) into a new staging table; how many."""
    conn.execute(_CREATE)
    count = 0
    with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
        for count, row in enumerate(rows, start=1):
            copy.write_row((count, *row))
    conn.execute("ANALYZE import_rows")
    return count


# Each rule: (field, message, the condition that breaks it). Checked in order; a row
# keeps its first problem. Names and places are trimmed, emails lower-cased, first.
_NORMALISE = """
UPDATE import_rows SET
    external_id = NULLIF(btrim(external_id), ''), first_name = btrim(first_name),
    last_name = btrim(last_name), email = lower(btrim(email)), timezone = btrim(timezone),
    location_city = NULLIF(btrim(location_city), ''),
    location_country = NULLIF(btrim(location_country), ''),
    locale = NULLIF(btrim(locale), ''),
    birthday = import_date(btrim(birthday_date)),
    anniversary = import_date(btrim(anniversary_date))
"""
_LOCAL_TODAY = (
    "(SELECT (%(now)s::timestamptz AT TIME ZONE z.compute_as)::date"
    " FROM time_zones z WHERE z.name = timezone)"
)
# A date after the earliest local today of any zone (computed once per statement) is
# the only kind that can be after its own zone's: only those look up their zone (a
# missing date neither).
_AFTER_LOCAL_TODAY = (
    "({date} > (SELECT min((%(now)s::timestamptz AT TIME ZONE z.compute_as)::date)"  # noqa: S608
    f" FROM time_zones z)) IS TRUE AND {{date}} > {_LOCAL_TODAY}"
)
_EMAIL_SHAPE = "^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$"
_RULES = (
    (
        "first_name",
        "must be 1 to 100 characters",
        "coalesce(length(first_name), 0) NOT BETWEEN 1 AND 100",
    ),
    (
        "last_name",
        "must be 1 to 100 characters",
        "coalesce(length(last_name), 0) NOT BETWEEN 1 AND 100",
    ),
    (
        "email",
        "not a valid email address",
        f"email IS NULL OR length(email) > 254 OR email !~ '{_EMAIL_SHAPE}'",
    ),
    (
        "timezone",
        "unknown time zone: use an IANA name such as America/New_York",
        "NOT EXISTS (SELECT 1 FROM time_zones z WHERE z.name = timezone)",
    ),
    (
        "birthday_date",
        "not a date YYYY-MM-DD",
        "birthday_date IS NOT NULL AND btrim(birthday_date) <> '' AND birthday IS NULL",
    ),
    (
        "anniversary_date",
        "not a date YYYY-MM-DD",
        "anniversary_date IS NOT NULL AND btrim(anniversary_date) <> '' AND anniversary IS NULL",
    ),
    (
        "birthday_date",
        "at least one of birthday_date and anniversary_date is required",
        "birthday IS NULL AND anniversary IS NULL",
    ),
    (
        "birthday_date",
        "must be from 1900-01-01 to the user's local today",
        "birthday < DATE '1900-01-01' OR " + _AFTER_LOCAL_TODAY.format(date="birthday"),
    ),
    (
        "anniversary_date",
        "must be from 1900-01-01 to the user's local today",
        "anniversary < DATE '1900-01-01' OR " + _AFTER_LOCAL_TODAY.format(date="anniversary"),
    ),
    ("location_city", "must be at most 100 characters", "length(location_city) > 100"),
    ("location_country", "must be at most 100 characters", "length(location_country) > 100"),
    (
        "locale",
        "must be a BCP 47 language tag such as en, fr or pt-BR",
        "length(locale) > 35 OR locale !~ '^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$'",
    ),
    (
        "external_id",
        "must be 1 to 255 characters without control characters",
        "length(external_id) > 255 OR external_id ~ '[[:cntrl:]]'",
    ),
    (
        "email",
        "the same email is on an earlier row",
        "row_number IN (SELECT row_number FROM (SELECT row_number, row_number() OVER"
        " (PARTITION BY email ORDER BY row_number) AS nth FROM import_rows) AS o"
        " WHERE nth > 1)",
    ),
)


def check(conn: psycopg.Connection, now: datetime) -> None:
    """Normalise every row, then mark each one's first problem."""
    execute(conn, _NORMALISE)
    for field, message, broken in _RULES:
        statement = sql.SQL(
            "UPDATE import_rows SET error_field = %(field)s, error_message = %(message)s"
            " WHERE error_field IS NULL AND ({})"
        ).format(sql.SQL(broken))  # a rule of this module: constant text, values bound
        execute(conn, statement, {"field": field, "message": message, "now": now})


_REPEATED_EXTERNAL_ID = """
SELECT row_number FROM (
    SELECT row_number, row_number() OVER (PARTITION BY external_id ORDER BY row_number) AS nth
    FROM import_rows WHERE external_id IS NOT NULL
) AS numbered WHERE nth = 2 ORDER BY row_number LIMIT 1
"""


def repeated_external_id(conn: psycopg.Connection) -> int | None:
    """The first row that repeats an earlier row's external_id, if any."""
    row = fetch_all(conn, _REPEATED_EXTERNAL_ID)
    return row[0]["row_number"] if row else None


_MATCH = """
UPDATE import_rows r SET user_id = u.id
FROM users u
WHERE r.error_field IS NULL AND r.external_id IS NOT NULL
  AND u.external_id = r.external_id AND u.deleted_at IS NULL;
UPDATE import_rows r SET user_id = u.id
FROM users u
WHERE r.error_field IS NULL AND r.user_id IS NULL
  AND u.email = r.email AND u.deleted_at IS NULL
  AND (u.external_id IS NULL OR r.external_id IS NULL);
UPDATE import_rows r
SET error_field = 'email', error_message = 'another live user has this email'
WHERE r.error_field IS NULL AND EXISTS (
    SELECT 1 FROM users u
    WHERE u.email = r.email AND u.deleted_at IS NULL AND u.id IS DISTINCT FROM r.user_id)
"""


def match_users(conn: psycopg.Connection) -> None:
    """Each valid row's live user: by external_id, else by email (a user without an
    external_id takes the row's); an email another live user has is a row error."""
    for statement in _MATCH.split(";"):
        execute(conn, statement)


# The users columns an import writes: the staged fields, named alike.
_COLUMNS = FIELDS
_VALUES = (
    "r.external_id, r.first_name, r.last_name, r.email, r.timezone, r.birthday,"
    " r.anniversary, r.location_city, r.location_country, r.locale"
)
_PLANNING = "(u.first_name, u.last_name, u.timezone, u.birthday_date, u.anniversary_date)"
_ROW_PLANNING = "(r.first_name, r.last_name, r.timezone, r.birthday, r.anniversary)"

# Column lists written from this module's constants; every value is bound or read from
# the staging table.
# A user created by someone else (the API) since the rows were matched makes the
# insert of its row conflict: that row is left out, then reported. The inserted rows
# take their user's id. Inserted in email order, the live-email index is written a
# page after the next instead of at random (at 200,000 rows the insert took 11-12 s
# against 14 s in file order; at 1,000,000 the difference was within the runs' spread).
_INSERT = f"""
WITH inserted AS (
    INSERT INTO users ({", ".join(_COLUMNS)})
    SELECT {_VALUES} FROM import_rows r
    WHERE r.error_field IS NULL AND r.user_id IS NULL
    ORDER BY r.email
    ON CONFLICT DO NOTHING
    RETURNING id, email
), placed AS (
    UPDATE import_rows r SET user_id = i.id, outcome = 'created'
    FROM inserted i
    WHERE r.email = i.email AND r.error_field IS NULL AND r.user_id IS NULL
)
SELECT count(*) AS n FROM inserted
"""  # noqa: S608
_TAKEN_MEANWHILE = """
UPDATE import_rows r
SET (error_field, error_message) = (
    SELECT CASE WHEN taken THEN 'external_id' ELSE 'email' END,
           CASE WHEN taken THEN 'another live user has this external_id'
                ELSE 'another live user has this email' END
    FROM (SELECT EXISTS (SELECT 1 FROM users u
                         WHERE u.external_id = r.external_id AND u.deleted_at IS NULL)
          AS taken) AS t)
WHERE r.error_field IS NULL AND r.user_id IS NULL
"""
# The users a row changes are locked first: a row another transaction changed since
# this statement began is read again as it is now (READ COMMITTED), both for the test
# "does the row differ" and for "did what planning reads change"; a user deleted
# meanwhile is left alone. Rows that match their user are neither locked nor written.
_DIFFERS = f"({', '.join('u.' + c for c in _COLUMNS)}) IS DISTINCT FROM ({_VALUES})"
_UPDATE = f"""
WITH locked AS (
    SELECT u.id, {_PLANNING} AS planning
    FROM users u JOIN import_rows r ON r.user_id = u.id
    WHERE r.error_field IS NULL AND u.deleted_at IS NULL AND {_DIFFERS}
    FOR UPDATE OF u
), changed AS (
    UPDATE users u SET ({", ".join(_COLUMNS)}) = ({_VALUES})
    FROM import_rows r JOIN locked l ON l.id = r.user_id
    WHERE r.error_field IS NULL AND r.user_id = u.id AND u.deleted_at IS NULL AND {_DIFFERS}
    RETURNING u.id, l.planning IS DISTINCT FROM {_ROW_PLANNING} AS replan
), marked AS (
    UPDATE import_rows r
    SET outcome = CASE WHEN c.replan THEN 'replanned' ELSE 'updated' END
    FROM changed c WHERE r.user_id = c.id
)
SELECT count(*) AS n FROM changed
"""  # noqa: S608
_UNCHANGED = """
SELECT count(*) AS n FROM import_rows r
WHERE r.error_field IS NULL AND r.user_id IS NOT NULL
"""


def insert_new(conn: psycopg.Connection) -> int:
    """Valid rows of no live user become users (outcome `created`); how many. A row
    whose email or external_id a user created meanwhile has is not inserted but
    reported."""
    created = fetch_one(conn, _INSERT)["n"]
    execute(conn, _TAKEN_MEANWHILE)
    return created


def update_changed(conn: psycopg.Connection) -> int:
    """Live users whose valid row differs take its values; how many. Their rows'
    outcome: `replanned` when a name, the zone or a date changed, else `updated`."""
    return fetch_one(conn, _UPDATE)["n"]


def list_users_with_outcome(conn: psycopg.Connection, outcome: str) -> str:
    """A temporary table (its name) of the ids (user_id) of the users whose rows had
    `outcome`, replacing the one an earlier call made: for set-based planning."""
    conn.execute("DROP TABLE IF EXISTS import_listed_users")
    conn.execute(
        "CREATE TEMPORARY TABLE import_listed_users ON COMMIT DROP AS"
        " SELECT user_id FROM import_rows WHERE outcome = %(outcome)s",
        {"outcome": outcome},
    )
    conn.execute("ANALYZE import_listed_users")
    return "import_listed_users"


def users_with_outcome(
    conn: psycopg.Connection, outcome: str, batch_size: int
) -> Iterator[list[UUID]]:
    """The ids of the users whose rows had `outcome`, `batch_size` at a time (read with
    a server-side cursor: a million ids are never held at once)."""
    with conn.cursor(name=f"import_{outcome}") as cursor:
        cursor.execute(
            "SELECT user_id FROM import_rows WHERE outcome = %(outcome)s ORDER BY user_id",
            {"outcome": outcome},
        )
        while batch := cursor.fetchmany(batch_size):
            yield [row["user_id"] for row in batch]


def matched_count(conn: psycopg.Connection) -> int:
    return fetch_one(conn, _UNCHANGED)["n"]


_DELETE_MISSING = """
WITH deleted AS (
    UPDATE users u SET deleted_at = now()
    WHERE u.deleted_at IS NULL AND u.external_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM import_rows r WHERE r.external_id = u.external_id)
    RETURNING u.id
)
INSERT INTO import_rows (row_number, user_id, outcome)
SELECT 0, id, 'deleted' FROM deleted
"""


def delete_missing(conn: psycopg.Connection) -> int:
    """Live users with an external_id no row names are deleted; how many. Each is
    recorded as a row numbered 0 with the outcome `deleted` (no row of the file)."""
    return execute(conn, _DELETE_MISSING)


def errors(conn: psycopg.Connection, limit: int) -> tuple[list[dict], int]:
    """The first `limit` rows with a problem (row, field, message), and how many in all."""
    listed = fetch_all(
        conn,
        "SELECT row_number AS row, error_field AS field, error_message AS message"
        " FROM import_rows WHERE error_field IS NOT NULL ORDER BY row_number LIMIT %(limit)s",
        {"limit": limit},
    )
    total = fetch_one(conn, "SELECT count(*) AS n FROM import_rows WHERE error_field IS NOT NULL")
    return listed, total["n"]
