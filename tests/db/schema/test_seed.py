"""`flask db seed` and its loader, seed/loader.py, on the real PostgreSQL."""

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from db.queries import fetch_all, fetch_scalar
from domain.occasions import occasion_in_year, send_instant
from schema import admin
from seed import loader as seed_loader
from seed.loader import SeedResult, seed_database

NOW = datetime(2026, 3, 4, 11, 0, tzinfo=UTC)  # Mar 5 in Kiritimati, Mar 4 in Pago Pago
SEND_TIME = time(9)
COUNT = 2000
RANDOM_SEED = 7

USERS_IN_ORDER = """
    SELECT id, first_name, last_name, email, timezone, birthday_date, anniversary_date,
           location_city, location_country, created_at
    FROM users ORDER BY email
"""
MESSAGES_IN_ORDER = """
    SELECT user_id, message_type, occasion_date, status, scheduled_send_time,
           actual_send_time, retry_count, idempotency_key, message_content
    FROM message_logs ORDER BY user_id, message_type, occasion_date
"""


def seed(url: str, count: int = COUNT, random_seed: int = RANDOM_SEED) -> SeedResult:
    conn = psycopg.connect(url, autocommit=False, row_factory=dict_row)
    try:
        result = seed_database(
            conn, count=count, random_seed=random_seed, now=NOW, send_time=SEND_TIME
        )
        conn.commit()
        return result
    finally:
        conn.close()


def query(url: str, statement: str, params=None) -> list[dict]:
    with psycopg.connect(url, row_factory=dict_row, options="-c TimeZone=UTC") as conn:
        return fetch_all(conn, statement, params)


def scalar(url: str, statement: str, params=None):
    with psycopg.connect(url, row_factory=dict_row, options="-c TimeZone=UTC") as conn:
        return fetch_scalar(conn, statement, params)


@pytest.fixture(scope="module")
def seeded(template_db) -> Iterator[tuple[str, SeedResult]]:
    """A private database seeded once for this module's read-only checks."""
    url = f"{template_db.rsplit('/', 1)[0]}/birthday_test_seed_{uuid.uuid4().hex[:10]}"
    admin.ensure_database(url, template=admin.database_name(template_db))
    try:
        yield url, seed(url)
    finally:
        admin.drop_database(url)


@pytest.fixture(scope="module")
def seeded_url(seeded) -> str:
    return seeded[0]


# What one seed gives


def test_seeding_reports_the_number_of_users_and_messages_it_loaded(seeded):
    url, result = seeded

    assert result.users == COUNT
    assert result.messages == scalar(url, "SELECT count(*) FROM message_logs")


def test_seeding_2000_users_creates_exactly_2000_users(seeded_url):
    assert scalar(seeded_url, "SELECT count(*) FROM users") == COUNT


def test_seeded_emails_are_unique(seeded_url):
    assert scalar(seeded_url, "SELECT count(DISTINCT lower(email)) FROM users") == COUNT


def test_seeded_users_cover_at_least_eleven_time_zones(seeded_url):
    assert scalar(seeded_url, "SELECT count(DISTINCT timezone) FROM users") >= 11


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Tongatapu"])
def test_seeded_users_include_the_awkward_offset_zone(seeded_url, zone):
    assert scalar(seeded_url, "SELECT count(*) FROM users WHERE timezone = %s", [zone]) > 0


def test_seeded_users_include_a_zone_far_west_of_utc(seeded_url):
    far_west = ["Pacific/Honolulu", "Pacific/Pago_Pago", "Pacific/Niue"]

    found = scalar(seeded_url, "SELECT count(*) FROM users WHERE timezone = ANY(%s)", [far_west])

    assert found > 0


def test_some_seeded_users_are_born_on_feb_29(seeded_url):
    found = scalar(
        seeded_url,
        "SELECT count(*) FROM users "
        "WHERE extract(month FROM birthday_date) = 2 AND extract(day FROM birthday_date) = 29",
    )

    assert found > 0


def test_some_seeded_users_have_only_an_anniversary(seeded_url):
    found = scalar(
        seeded_url,
        "SELECT count(*) FROM users WHERE birthday_date IS NULL AND anniversary_date IS NOT NULL",
    )

    assert found > 0


def test_seeded_messages_are_scheduled_sent_and_failed(seeded_url):
    rows = query(seeded_url, "SELECT DISTINCT status FROM message_logs")

    assert {row["status"] for row in rows} == {"SCHEDULED", "SENT", "FAILED"}


def test_every_seeded_idempotency_key_is_user_type_and_occasion_date(seeded_url):
    rows = query(
        seeded_url, "SELECT user_id, message_type, occasion_date, idempotency_key FROM message_logs"
    )

    wrong = [
        row
        for row in rows
        if row["idempotency_key"]
        != f"{row['user_id']}:{row['message_type']}:{row['occasion_date']}"
    ]
    assert rows
    assert wrong == []


def test_every_user_has_exactly_one_scheduled_message_per_occasion(seeded_url):
    users = query(seeded_url, "SELECT id, birthday_date, anniversary_date FROM users")
    scheduled = query(
        seeded_url, "SELECT user_id, message_type FROM message_logs WHERE status = 'SCHEDULED'"
    )

    expected = Counter()
    for user in users:
        if user["birthday_date"] is not None:
            expected[(user["id"], "BIRTHDAY")] += 1
        if user["anniversary_date"] is not None:
            expected[(user["id"], "ANNIVERSARY")] += 1
    assert Counter((row["user_id"], row["message_type"]) for row in scheduled) == expected


def test_every_scheduled_message_is_due_after_now(seeded_url):
    earliest = scalar(
        seeded_url, "SELECT min(scheduled_send_time) FROM message_logs WHERE status = 'SCHEDULED'"
    )

    assert earliest > NOW


def test_every_scheduled_message_is_due_at_nine_local_on_its_occasion_date(seeded_url):
    rows = query(
        seeded_url,
        """
        SELECT m.occasion_date, m.scheduled_send_time, u.timezone
        FROM message_logs m JOIN users u ON u.id = m.user_id
        WHERE m.status = 'SCHEDULED'
        """,
    )

    wrong = []
    for row in rows:
        local = row["scheduled_send_time"].astimezone(ZoneInfo(row["timezone"]))
        if (local.date(), local.time()) != (row["occasion_date"], SEND_TIME):
            wrong.append(row)
    assert rows
    assert wrong == []


def test_every_scheduled_message_is_the_next_occasion_not_yet_sent(seeded_url):
    # An occasion whose 09:00 has passed today is SENT, and next year's is SCHEDULED.
    rows = query(
        seeded_url,
        """
        SELECT m.user_id, m.message_type, m.occasion_date
        FROM message_logs m
        WHERE m.status = 'SCHEDULED' AND EXISTS (
            SELECT 1 FROM message_logs later
            WHERE later.user_id = m.user_id AND later.message_type = m.message_type
              AND later.occasion_date > m.occasion_date
        )
        """,
    )

    assert rows == []


def test_an_occasion_whose_nine_local_passed_today_is_recorded_as_sent(seeded_url):
    users = query(seeded_url, "SELECT id, timezone, birthday_date, anniversary_date FROM users")
    sent = {
        (row["user_id"], row["message_type"], row["occasion_date"])
        for row in query(
            seeded_url,
            "SELECT user_id, message_type, occasion_date FROM message_logs WHERE status = 'SENT'",
        )
    }

    went_out_today = []
    for user in users:
        zone = ZoneInfo(user["timezone"])
        local_today = NOW.astimezone(zone).date()
        for message_type, original in (
            ("BIRTHDAY", user["birthday_date"]),
            ("ANNIVERSARY", user["anniversary_date"]),
        ):
            if (
                original is not None
                and occasion_in_year(original, local_today.year) == local_today
                and send_instant(local_today, zone, SEND_TIME) <= NOW
            ):
                went_out_today.append((user["id"], message_type, local_today))
    assert went_out_today
    assert [key for key in went_out_today if key not in sent] == []


def test_sent_and_failed_messages_are_for_past_occasions(seeded_url):
    latest = scalar(
        seeded_url,
        "SELECT max(scheduled_send_time) FROM message_logs WHERE status IN ('SENT', 'FAILED')",
    )

    assert latest <= NOW


def test_the_default_partition_is_empty_after_seeding(seeded_url):
    assert scalar(seeded_url, "SELECT count(*) FROM message_logs") > 0
    assert scalar(seeded_url, "SELECT count(*) FROM message_logs_default") == 0


# Determinism


def test_the_same_seed_and_now_give_identical_users(seeded_url, fresh_db_url):
    seed(fresh_db_url)

    assert query(fresh_db_url, USERS_IN_ORDER) == query(seeded_url, USERS_IN_ORDER)


def test_the_same_seed_and_now_give_identical_messages(seeded_url, fresh_db_url):
    seed(fresh_db_url)

    assert query(fresh_db_url, MESSAGES_IN_ORDER) == query(seeded_url, MESSAGES_IN_ORDER)


def test_a_different_random_seed_gives_different_users(seeded_url, fresh_db_url):
    seed(fresh_db_url, random_seed=RANDOM_SEED + 1)

    theirs = query(fresh_db_url, "SELECT id, birthday_date FROM users")
    ours = query(seeded_url, "SELECT id, birthday_date FROM users")
    assert len(theirs) == COUNT
    assert {row["id"] for row in theirs}.isdisjoint({row["id"] for row in ours})
    assert sorted(row["birthday_date"] or date.min for row in theirs) != sorted(
        row["birthday_date"] or date.min for row in ours
    )


# Deferred indexes and foreign keys


INDEX_NAMES = """
    SELECT tablename, indexname, indexdef FROM pg_indexes
    WHERE schemaname = 'public' AND tablename IN ('users', 'message_logs')
    ORDER BY tablename, indexname
"""
FOREIGN_KEYS = """
    SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS definition
    FROM pg_constraint
    WHERE contype = 'f' AND conparentid = 0
      AND conrelid IN ('users'::regclass, 'message_logs'::regclass)
    ORDER BY 1, 2
"""
PARTITION_FOREIGN_KEYS = """
    SELECT count(*) FROM pg_inherits i
    WHERE i.inhparent = 'message_logs'::regclass AND NOT EXISTS (
        SELECT 1 FROM pg_constraint c
        WHERE c.conrelid = i.inhrelid AND c.contype = 'f' AND c.confrelid = 'users'::regclass
    )
"""
SECONDARY_INDEX_OIDS = """
    SELECT c.relname, c.oid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid IN ('users'::regclass, 'message_logs'::regclass) AND NOT i.indisunique
"""
PARTITION_INDEXES = """
    SELECT ic.relname AS index_name, tc.relname AS table_name, i.indisvalid
    FROM pg_inherits p
    JOIN pg_index i ON i.indrelid = p.inhrelid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class tc ON tc.oid = i.indrelid
    WHERE p.inhparent = 'message_logs'::regclass
"""
# Each index of the parent has one attached index on every partition.
MISSING_PARTITION_INDEXES = """
    SELECT parent_index.relname AS parent_index, part.relname AS partition_name
    FROM pg_index pi
    JOIN pg_class parent_index ON parent_index.oid = pi.indexrelid
    CROSS JOIN pg_inherits p
    JOIN pg_class part ON part.oid = p.inhrelid
    WHERE pi.indrelid = 'message_logs'::regclass AND p.inhparent = 'message_logs'::regclass
      AND NOT EXISTS (
        SELECT 1 FROM pg_inherits ii JOIN pg_index ci ON ci.indexrelid = ii.inhrelid
        WHERE ii.inhparent = pi.indexrelid AND ci.indrelid = p.inhrelid AND ci.indisvalid
      )
"""


@pytest.fixture(scope="module")
def deferred_seed(template_db) -> Iterator[dict]:
    """A private database seeded through the deferral path, with its catalog before and after."""
    url = f"{template_db.rsplit('/', 1)[0]}/birthday_test_defer_{uuid.uuid4().hex[:10]}"
    admin.ensure_database(url, template=admin.database_name(template_db))
    try:
        before = {
            "indexes": query(url, INDEX_NAMES),
            "foreign_keys": query(url, FOREIGN_KEYS),
            "oids": {row["relname"]: row["oid"] for row in query(url, SECONDARY_INDEX_OIDS)},
        }
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(seed_loader, "DEFER_INDEXES_FROM", 1)
            result = seed(url, count=300)
        yield {"url": url, "before": before, "result": result}
    finally:
        admin.drop_database(url)


def test_the_deferral_path_rebuilds_the_secondary_indexes(deferred_seed):
    after = {
        row["relname"]: row["oid"] for row in query(deferred_seed["url"], SECONDARY_INDEX_OIDS)
    }
    before = deferred_seed["before"]["oids"]

    assert before
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)


def test_the_deferral_path_loads_every_row(deferred_seed):
    url = deferred_seed["url"]

    assert scalar(url, "SELECT count(*) FROM users") == 300
    assert scalar(url, "SELECT count(*) FROM message_logs") == deferred_seed["result"].messages


def test_the_deferral_path_restores_the_same_indexes(deferred_seed):
    assert query(deferred_seed["url"], INDEX_NAMES) == deferred_seed["before"]["indexes"]


def test_the_deferral_path_restores_the_same_foreign_keys(deferred_seed):
    assert deferred_seed["before"]["foreign_keys"]
    assert query(deferred_seed["url"], FOREIGN_KEYS) == deferred_seed["before"]["foreign_keys"]


def test_the_deferral_path_restores_the_foreign_key_on_every_partition(deferred_seed):
    assert scalar(deferred_seed["url"], PARTITION_FOREIGN_KEYS) == 0


def test_the_deferral_path_leaves_every_partition_index_valid(deferred_seed):
    rows = query(deferred_seed["url"], PARTITION_INDEXES)

    assert rows
    assert [row for row in rows if not row["indisvalid"]] == []


def test_the_deferral_path_attaches_each_parent_index_to_every_partition(deferred_seed):
    assert query(deferred_seed["url"], MISSING_PARTITION_INDEXES) == []


def test_the_parent_indexes_are_valid_after_the_deferral_path(deferred_seed):
    invalid = query(
        deferred_seed["url"],
        """
        SELECT indexrelid::regclass::text AS name FROM pg_index
        WHERE indrelid IN ('users'::regclass, 'message_logs'::regclass) AND NOT indisvalid
        """,
    )

    assert invalid == []


def test_foreign_keys_are_enforced_after_the_deferral_path(deferred_seed):
    with (
        psycopg.connect(deferred_seed["url"]) as conn,
        pytest.raises(psycopg.errors.ForeignKeyViolation),
    ):
        conn.execute(
            """
            INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,
                                      scheduled_send_time, idempotency_key)
            VALUES (%(user_id)s, 'BIRTHDAY', %(day)s, 'x', now(),
                    message_idempotency_key(%(user_id)s, 'BIRTHDAY', %(day)s))
            """,
            {"user_id": uuid.uuid4(), "day": NOW.date()},
        )


# The CLI


SEEDED = re.compile(r"seeded (\d+) users and (\d+) messages in [\d.]+ s")


def test_cli_seed_loads_the_users_and_reports_the_counts(runner, db_url):
    result = runner.invoke(args=["db", "seed", "--users", "300", "--random-seed", "3"])

    assert result.exit_code == 0, result.output
    users, messages = map(int, SEEDED.search(result.output).groups())
    assert users == 300
    assert scalar(db_url, "SELECT count(*) FROM users") == 300
    assert messages == scalar(db_url, "SELECT count(*) FROM message_logs")


def test_cli_seed_a_second_time_says_users_are_present_and_adds_nothing(runner, db_url):
    runner.invoke(args=["db", "seed", "--users", "300", "--random-seed", "3"])
    messages = scalar(db_url, "SELECT count(*) FROM message_logs")

    result = runner.invoke(args=["db", "seed", "--users", "300", "--random-seed", "3"])

    assert result.exit_code == 0, result.output
    assert "users already present" in result.output
    assert SEEDED.search(result.output) is None
    assert scalar(db_url, "SELECT count(*) FROM users") == 300
    assert scalar(db_url, "SELECT count(*) FROM message_logs") == messages


def test_cli_seed_with_reset_replaces_the_existing_users(runner, db_url):
    runner.invoke(args=["db", "seed", "--users", "300", "--random-seed", "3"])
    old_ids = {row["id"] for row in query(db_url, "SELECT id FROM users")}

    result = runner.invoke(args=["db", "seed", "--users", "200", "--random-seed", "4", "--reset"])

    assert result.exit_code == 0, result.output
    users, messages = map(int, SEEDED.search(result.output).groups())
    assert users == 200
    new_ids = {row["id"] for row in query(db_url, "SELECT id FROM users")}
    assert len(new_ids) == 200
    assert new_ids.isdisjoint(old_ids)
    assert scalar(db_url, "SELECT count(*) FROM message_logs") == messages
