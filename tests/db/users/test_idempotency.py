"""The idempotency store and idempotent POST /users, on the real PostgreSQL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from api.resources import resources_of
from errors import IdempotencyKeyTakenOver
from repositories import idempotency_keys
from tests.factories import ADA_BODY
from users import idempotent_requests as idempotency

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
BODY = ADA_BODY


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def _count(url: str, table: str) -> int:
    with _connect(url) as conn:
        return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


# --- the repository ---------------------------------------------------------------------


def _claim(conn, scope: str, key: str, fingerprint: str = "fp"):
    return idempotency_keys.claim(conn, scope, key, fingerprint, MINUTE, DAY)


def test_a_completed_key_keeps_its_first_result(conn):
    claimed_at = _claim(conn, "email", "k1")
    first = idempotency_keys.complete(conn, "email", "k1", claimed_at, 200, {"ok": True})
    second = _claim(conn, "email", "k1")

    assert (first, second) == (True, None)
    row = idempotency_keys.find(conn, "email", "k1")
    assert (row["response_status"], row["response_body"]) == (200, {"ok": True})


def test_the_same_key_in_another_scope_is_a_different_key(conn):
    _claim(conn, "email", "shared")

    assert _claim(conn, "http", "shared") is not None
    assert idempotency_keys.find(conn, "sms", "shared") is None


def test_concurrent_claims_of_one_key_have_exactly_one_winner(db_url):
    threads = 8
    barrier = threading.Barrier(threads)

    def claim(_: int) -> bool:
        with _connect(db_url) as conn:
            barrier.wait(timeout=10)
            return _claim(conn, "race", "the-key") is not None

    with ThreadPoolExecutor(threads) as executor:
        results = list(executor.map(claim, range(threads)))

    assert results.count(True) == 1
    assert _count(db_url, "idempotency_keys") == 1


def test_a_claim_in_progress_is_not_processed_and_cannot_be_claimed_twice(conn):
    first = idempotency_keys.claim(conn, "http", "k", "fp", MINUTE, DAY)
    second = idempotency_keys.claim(conn, "http", "k", "fp", MINUTE, DAY)

    assert first is not None and second is None
    assert idempotency_keys.find(conn, "http", "k")["response_status"] is None


def test_a_stale_claim_is_taken_over(conn):
    idempotency_keys.claim(conn, "http", "k", "old", MINUTE, DAY)
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '5 minutes'")

    assert idempotency_keys.claim(conn, "http", "k", "new", MINUTE, DAY)
    assert idempotency_keys.find(conn, "http", "k")["request_fingerprint"] == "new"


def test_a_completed_key_is_never_taken_over(conn):
    claimed_at = idempotency_keys.claim(conn, "http", "k", "fp", MINUTE, DAY)
    idempotency_keys.complete(conn, "http", "k", claimed_at, 201, {"id": 1})
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '5 minutes'")

    assert not idempotency_keys.claim(conn, "http", "k", "fp", MINUTE, DAY)
    assert idempotency_keys.find(conn, "http", "k")["response_status"] == 201


def test_a_completed_key_past_its_retention_is_a_new_key(conn):
    claimed_at = idempotency_keys.claim(conn, "http", "k", "fp", MINUTE, DAY)
    idempotency_keys.complete(conn, "http", "k", claimed_at, 201, {"id": 1})
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")

    assert idempotency_keys.claim(conn, "http", "k", "other", MINUTE, DAY)
    row = idempotency_keys.find(conn, "http", "k")
    assert (row["response_status"], row["request_fingerprint"]) == (None, "other")


def test_a_claim_taken_over_can_neither_be_completed_nor_released_by_its_first_owner(conn):
    first = idempotency_keys.claim(conn, "http", "k", "old", MINUTE, DAY)
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '5 minutes'")
    stale = conn.execute("SELECT created_at FROM idempotency_keys").fetchone()["created_at"]
    second = idempotency_keys.claim(conn, "http", "k", "new", MINUTE, DAY)

    idempotency_keys.release(conn, "http", "k", stale)
    completed = idempotency_keys.complete(conn, "http", "k", stale, 201, {"late": True})

    assert first is not None and second is not None and second != stale
    assert completed is False
    row = idempotency_keys.find(conn, "http", "k")
    assert (row["request_fingerprint"], row["response_status"]) == ("new", None)
    assert idempotency_keys.complete(conn, "http", "k", second, 201, {"retry": True})


def test_stats_count_keys_by_scope_with_the_oldest(conn):
    _claim(conn, "http", "a")
    _claim(conn, "http", "b")
    _claim(conn, "email", "c")
    conn.execute("UPDATE idempotency_keys SET created_at = '2026-01-01T00:00:00Z' WHERE key = 'c'")

    stats = idempotency_keys.stats(conn)

    assert stats["count"] == 3
    assert stats["by_scope"] == {"email": 1, "http": 2}
    assert stats["oldest"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert idempotency_keys.probe(conn)


def test_cleanup_deletes_only_keys_older_than_the_retention_in_batches(app, db_url, monkeypatch):
    with _connect(db_url) as conn:
        conn.execute(
            "INSERT INTO idempotency_keys (scope, key, created_at)"
            " SELECT 'http', 'old-' || n, now() - interval '2 days' FROM generate_series(1, 25) n"
        )
        conn.execute(
            "INSERT INTO idempotency_keys (scope, key)"
            " SELECT 'http', 'new-' || n FROM generate_series(1, 5) n"
        )
    monkeypatch.setattr(idempotency, "CLEANUP_BATCH", 10)

    deleted = idempotency.clean_up_expired(
        resources_of(app).pool, datetime.now(UTC), timedelta(hours=24)
    )

    assert deleted == 25
    with _connect(db_url) as conn:
        keys = {row["key"] for row in conn.execute("SELECT key FROM idempotency_keys")}
    assert keys == {f"new-{n}" for n in range(1, 6)}


# --- POST /users with Idempotency-Key ----------------------------------------------------


def test_a_repeated_key_with_the_same_body_replays_the_first_response(client, db_url):
    first = client.post("/users", json=BODY, headers={"Idempotency-Key": "abc-1"})
    again = client.post("/users", json=BODY, headers={"Idempotency-Key": "abc-1"})

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"]
    assert _count(db_url, "users") == 1


def test_the_same_key_with_another_body_is_refused_with_422(client, db_url):
    client.post("/users", json=BODY, headers={"Idempotency-Key": "abc-2"})
    other = client.post(
        "/users", json={**BODY, "first_name": "Grace"}, headers={"Idempotency-Key": "abc-2"}
    )

    assert other.status_code == 422
    assert "Idempotency-Key" in other.get_json()["errors"]["headers"]
    assert _count(db_url, "users") == 1


def test_a_repeat_while_the_first_is_in_progress_gets_409(client, db_url, app):
    fingerprint = idempotency.fingerprint("POST", "/users", BODY)
    with _connect(db_url) as conn:
        idempotency_keys.claim(conn, "POST /users", "abc-3", fingerprint, MINUTE, DAY)

    response = client.post("/users", json=BODY, headers={"Idempotency-Key": "abc-3"})

    assert response.status_code == 409
    assert response.get_json()["code"] == 409
    assert _count(db_url, "users") == 0


def test_a_failed_request_frees_its_key_for_a_corrected_retry(client, db_url):
    client.post("/users", json=BODY)  # the email is now taken
    clash = client.post("/users", json=BODY, headers={"Idempotency-Key": "abc-4"})
    fixed = {**BODY, "email": "other@example.com"}
    retry = client.post("/users", json=fixed, headers={"Idempotency-Key": "abc-4"})

    assert clash.status_code == 409
    assert retry.status_code == 201
    assert _count(db_url, "users") == 2


def _wait_for_lock_wait(url: str, timeout: float = 10) -> None:
    """Until some backend of this database waits for a lock (bounded)."""
    deadline = time.monotonic() + timeout
    with _connect(url) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()["n"]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError(f"no request was waiting for a lock after {timeout} s")


def test_a_second_request_with_the_key_in_flight_gets_409_and_creates_nothing(app, db_url):
    # Different emails, so the unique email index cannot be what stops the second
    # request: only the idempotency store can.
    other = {**BODY, "email": "grace@example.com", "first_name": "Grace"}
    with _connect(db_url) as blocker, ThreadPoolExecutor(1) as executor:
        # Given the first request holds its key and is stuck inserting its user,
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE users IN SHARE MODE")
        first = executor.submit(
            app.test_client().post, "/users", json=BODY, headers={"Idempotency-Key": "race"}
        )
        _wait_for_lock_wait(db_url)

        # when a second request with the same key and another body arrives,
        second = app.test_client().post("/users", json=other, headers={"Idempotency-Key": "race"})
        blocker.execute("ROLLBACK")
        first_response = first.result(timeout=30)

    # then it is told the key is in flight, and only the first user exists.
    assert second.status_code == 409
    assert "still being processed" in second.get_json()["message"]
    assert first_response.status_code == 201
    with _connect(db_url) as conn:
        emails = [row["email"] for row in conn.execute("SELECT email FROM users")]
    assert emails == [BODY["email"]]


def test_a_request_whose_key_was_taken_over_rolls_back_and_reports_a_conflict(app, db_url):
    pool = resources_of(app).pool

    def slow_work(conn: psycopg.Connection) -> tuple[int, dict]:
        conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES ('Late', 'Run', 'late@example.com', 'UTC', '1990-01-01')"
        )
        # Meanwhile the request outlives the stale window and a retry takes the key.
        with _connect(db_url) as other:
            other.execute("UPDATE idempotency_keys SET created_at = now() - interval '5 minutes'")
            assert idempotency_keys.claim(other, "POST /users", "slow", "retry", MINUTE, DAY)
        return 201, {"late": True}

    with pytest.raises(IdempotencyKeyTakenOver):
        idempotency.run_once(pool, "POST /users", "slow", "first", slow_work, MINUTE, DAY)

    assert _count(db_url, "users") == 0
    with _connect(db_url) as conn:
        row = idempotency_keys.find(conn, "POST /users", "slow")
    assert (row["request_fingerprint"], row["response_status"]) == ("retry", None)


def test_a_taken_over_key_is_answered_409_by_the_api(app):
    @app.get("/test-taken-over")
    def taken_over():
        raise IdempotencyKeyTakenOver()

    response = app.test_client().get("/test-taken-over")

    assert response.status_code == 409
    assert response.get_json()["code"] == 409


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_an_idempotency_key_outside_1_to_255_characters_is_422(client, key, db_url):
    response = client.post("/users", json=BODY, headers={"Idempotency-Key": key})

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]["headers"]
    assert _count(db_url, "users") == 0


def test_cleanup_keys_command_deletes_expired_keys(runner, db_url):
    with _connect(db_url) as conn:
        conn.execute(
            "INSERT INTO idempotency_keys (scope, key, created_at) VALUES"
            " ('http', 'old', now() - interval '3 days'), ('http', 'fresh', now())"
        )

    result = runner.invoke(args=["db", "cleanup-keys"])

    assert result.exit_code == 0, result.output
    assert "deleted 1 expired key(s); 1 left" in result.output
    assert _count(db_url, "idempotency_keys") == 1
