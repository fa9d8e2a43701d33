"""Load seed users and their messages with COPY, in batches, inside one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial

import psycopg

from db.queries import copy_rows
from repositories import catalog, partitions, users
from seed.data import MESSAGE_COLUMNS, USER_COLUMNS, SeedGenerator

BATCH_SIZE = 10_000
# Above this many users, non-unique indexes are dropped and rebuilt after the load:
# building a trigram index once is several times cheaper than updating it per row.
DEFER_INDEXES_FROM = 50_000
SEEDED_TABLES = ("users", "message_logs")


@dataclass(frozen=True)
class SeedResult:
    users: int
    messages: int


def seed_database(
    conn: psycopg.Connection,
    count: int,
    random_seed: int,
    now: datetime,
    send_time: time,
    on_batch: Callable[[int], None] = lambda done: None,
) -> SeedResult:
    """Insert `count` users and their message history; all or nothing.

    Partitions for the past year are created first so history rows land in their
    month instead of the DEFAULT partition.
    """
    generator = SeedGenerator(random_seed, now, send_time)
    users_done = messages_done = 0
    user_names, user_types = zip(*USER_COLUMNS, strict=True)
    message_names, message_types = zip(*MESSAGE_COLUMNS, strict=True)
    with conn.transaction():
        partitions.create_monthly(conn, 24, (now - timedelta(days=366)).date())
        deferred = drop_deferrable(conn) if count >= DEFER_INDEXES_FROM else []
        for start in range(0, count, BATCH_SIZE):
            batch = list(generator.users(min(BATCH_SIZE, count - start), start))
            users_done += copy_rows(conn, "users", user_names, (u.row() for u in batch), user_types)
            messages = (row for user in batch for row in generator.messages(user))
            messages_done += copy_rows(conn, "message_logs", message_names, messages, message_types)
            on_batch(len(batch))
        for restore in deferred:
            restore()
    return SeedResult(users=users_done, messages=messages_done)


def drop_deferrable(conn: psycopg.Connection) -> list[Callable[[], None]]:
    """Drop non-unique indexes and foreign keys of the seeded tables for a bulk load.

    Returns the steps that put them back: each index is rebuilt once and each
    foreign key validated in one pass, instead of per row (the recipe of the
    PostgreSQL manual's "Populating a Database"). Unique constraints stay.
    """
    catalog.use_bulk_load_memory(conn)
    restores: list[Callable[[], None]] = []
    for table in SEEDED_TABLES:
        for index in catalog.secondary_indexes(conn, table):
            catalog.drop_index(conn, index["name"])
            restores.append(partial(catalog.create_index, conn, index["definition"]))
        for key in catalog.foreign_keys(conn, table):
            catalog.drop_constraint(conn, table, key["name"])
            restores.append(
                partial(catalog.add_constraint, conn, table, key["name"], key["definition"])
            )
    return restores


def has_users(conn: psycopg.Connection) -> bool:
    """Whether seeding would collide with existing data."""
    return users.any_exist(conn)


def reset(conn: psycopg.Connection) -> None:
    """Remove every user and message before a fresh seed."""
    with conn.transaction():
        users.delete_all_with_messages(conn)
