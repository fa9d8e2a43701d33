"""Exporting the live users as CSV, streamed by COPY: the file an import reads back.

The header names the import's fields (repositories/user_imports.py FIELDS) in their
order; dates are written YYYY-MM-DD, NULL as an empty value. The server writes the rows
and they pass through chunk by chunk: a million users are never held in memory.
"""

from __future__ import annotations

from typing import BinaryIO

import psycopg

# The columns are FIELDS, in that order (tests/db/users/test_import_cli.py holds it).
_COPY = """
COPY (
    SELECT external_id, first_name, last_name, email, timezone,
           to_char(birthday_date, 'YYYY-MM-DD') AS birthday_date,
           to_char(anniversary_date, 'YYYY-MM-DD') AS anniversary_date,
           location_city, location_country, locale
    FROM users
    WHERE deleted_at IS NULL
    ORDER BY created_at, id
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def write_csv(conn: psycopg.Connection, out: BinaryIO) -> int:
    """Write the live users to `out` as CSV with a header, chunk by chunk; how many.

    A COPY lasts as long as its reader takes to read it: the statement timeout is
    lifted for the caller's transaction (SET LOCAL).
    """
    conn.execute("SET LOCAL statement_timeout = 0")
    with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
        for chunk in copy:
            out.write(chunk)
        return cursor.rowcount  # the COPY's count, gone once the cursor is closed
