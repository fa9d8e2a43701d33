"""Small query helpers: every repository talks to PostgreSQL through these.

They take an open connection (rows come back as dicts) and parameterised SQL;
they never commit. A unit of work is a `transaction(pool)` block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

Query = str | sql.Composable
Params = Mapping[str, Any] | Sequence[Any] | None


class NoRowFound(LookupError):
    """`fetch_one` expected a row and the query returned none."""


def fetch_all(conn: psycopg.Connection, query: Query, params: Params = None) -> list[dict]:
    """Every row of the result."""
    return conn.execute(query, params).fetchall()


def fetch_optional(conn: psycopg.Connection, query: Query, params: Params = None) -> dict | None:
    """The first row, or None when there is none."""
    return conn.execute(query, params).fetchone()


def fetch_one(conn: psycopg.Connection, query: Query, params: Params = None) -> dict:
    """The first row; raises `NoRowFound` when there is none."""
    row = fetch_optional(conn, query, params)
    if row is None:
        raise NoRowFound("query returned no row")
    return row


def fetch_scalar(conn: psycopg.Connection, query: Query, params: Params = None) -> Any:
    """The first column of the first row, or None when there is no row."""
    row = fetch_optional(conn, query, params)
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, Mapping) else row[0]


def execute(conn: psycopg.Connection, query: Query, params: Params = None) -> int:
    """Run a statement; returns the number of rows it touched."""
    return conn.execute(query, params).rowcount


def fetch_page(
    conn: psycopg.Connection,
    table: str,
    columns: sql.Composable,
    where: sql.Composable,
    order_by: sql.Composable,
    params: Mapping[str, Any],
    limit: int,
    offset: int,
) -> tuple[list[dict], int]:
    """One page of `table` rows matching `where`, and how many match in all.

    A page past the last one answers without a row query (and without asking
    PostgreSQL for an OFFSET beyond bigint, whatever page number a client sends).
    """
    total = fetch_scalar(
        conn,
        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(table), where),
        params,
    )
    if offset >= total:
        return [], total
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s")
    rows = fetch_all(
        conn,
        query.format(columns, sql.Identifier(table), where, order_by),
        {**params, "limit": limit, "offset": offset},
    )
    return rows, total


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection inside one transaction: commit on success, else roll back."""
    with pool.connection() as conn, conn.transaction():
        yield conn


def copy_rows(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    types: Sequence[str] | None = None,
) -> int:
    """Bulk-load rows with COPY (an order of magnitude faster than INSERTs); returns the count.

    With `types` (one PostgreSQL type name per column) the binary format is used,
    which spares the server from parsing text.
    """
    statement = sql.SQL("COPY {} ({}) FROM STDIN" + (" (FORMAT BINARY)" if types else "")).format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with conn.cursor().copy(statement) as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count
