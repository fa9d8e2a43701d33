"""POST /users/import with Idempotency-Key: a streamed body, fingerprinted as it is read."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pytest

from api import user_import
from api.resources import resources_of
from app import create_app
from repositories import idempotency_keys
from tests.factories import assert_error
from users import idempotent_requests as idempotency

HEADER = "external_id,first_name,last_name,email,timezone,birthday_date,anniversary_date\n"
ADA = "HR-1,Ada,Lovelace,ada@example.com,Europe/London,1990-12-10,\n"
GRACE = "HR-2,Grace,Hopper,grace@example.com,America/New_York,1906-12-09,1930-06-15\n"
SCOPE = "POST /users/import"
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def post_csv(client, body: str | bytes, key: str | None, query: str = ""):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(f"/users/import{query}", data=body, content_type="text/csv", headers=headers)


def users(db) -> dict[str, dict]:
    rows = db.execute("SELECT * FROM users WHERE deleted_at IS NULL ORDER BY external_id")
    return {r["external_id"]: r for r in rows.fetchall()}


def stored(db, key: str) -> dict | None:
    return idempotency_keys.find(db, SCOPE, key)


def _ndjson_over_chunks(tail: str = "") -> bytes:
    """Two users, then blank lines (skipped) over several CHUNK_BYTES chunks, then `tail`."""
    lines = [
        {
            "external_id": f"HR-{n}",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": f"ada{n}@example.com",
            "timezone": "UTC",
            "birthday_date": "1990-12-10",
        }
        for n in (1, 2)
    ]
    text = "\n".join(json.dumps(line) for line in lines)
    return (text + "\n" * (3 * user_import.CHUNK_BYTES) + tail + "\n").encode()


def _ndjson(client, body: bytes, key: str):
    return client.post(
        "/users/import",
        data=body,
        content_type="application/x-ndjson",
        headers={"Idempotency-Key": key},
    )


def test_the_first_request_with_a_key_imports_and_stores_its_answer(client, db):
    response = post_csv(client, HEADER + ADA + GRACE, "imp-1")

    assert response.status_code == 200
    assert response.get_json()["created"] == 2
    assert "Idempotent-Replayed" not in response.headers
    assert set(users(db)) == {"HR-1", "HR-2"}
    row = stored(db, "imp-1")
    assert (row["response_status"], row["response_body"]) == (200, response.get_json())
    assert not row["request_fingerprint"].startswith("pending:")


def test_the_same_key_and_body_replay_the_first_answer_and_import_nothing_again(client, db):
    first = post_csv(client, HEADER + ADA + GRACE, "imp-2")
    before = users(db)

    again = post_csv(client, HEADER + ADA + GRACE, "imp-2")

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    # the first answer (2 created), not the second run's (2 unchanged)
    assert again.get_json() == first.get_json()
    assert again.get_json()["created"] == 2
    assert users(db) == before


def test_the_same_key_with_another_body_is_422_naming_the_key_and_writes_nothing(client, db):
    post_csv(client, HEADER + ADA, "imp-3")
    before = users(db)

    other = post_csv(client, HEADER + ADA + GRACE, "imp-3")

    error = assert_error(other, 422)
    assert "Idempotency-Key" in error["errors"]["headers"]
    assert users(db) == before


def test_the_same_key_with_another_query_is_422(client, db):
    dry = post_csv(client, HEADER + ADA, "imp-4", "?dry_run=true")

    real = post_csv(client, HEADER + ADA, "imp-4")

    assert dry.status_code == 200 and dry.get_json()["dry_run"] is True
    assert "Idempotency-Key" in assert_error(real, 422)["errors"]["headers"]
    assert users(db) == {}


def test_the_same_key_and_bytes_with_another_content_type_is_422(client, db):
    body = _ndjson_over_chunks()
    first = _ndjson(client, body, "imp-5")
    before = users(db)

    as_csv = post_csv(client, body, "imp-5")

    assert first.status_code == 200
    assert "Idempotency-Key" in assert_error(as_csv, 422)["errors"]["headers"]
    assert users(db) == before


def test_a_dry_run_with_a_key_is_stored_and_replayed(client, db):
    first = post_csv(client, HEADER + ADA, "imp-6", "?dry_run=true")

    again = post_csv(client, HEADER + ADA, "imp-6", "?dry_run=1")

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert users(db) == {}
    assert stored(db, "imp-6")["response_status"] == 200


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_an_invalid_key_is_422_naming_the_header_and_imports_nothing(client, db, key):
    response = post_csv(client, HEADER + ADA, key)

    assert "Idempotency-Key" in assert_error(response, 422)["errors"]["headers"]
    assert users(db) == {}
    assert idempotency_keys.stats(db)["count"] == 0


def test_a_body_refused_as_a_whole_frees_the_key_for_a_fixed_file(client, db):
    bad = post_csv(client, "external_id,nick\nx,y\n", "imp-7")

    fixed = post_csv(client, HEADER + ADA, "imp-7")

    assert "nick" in assert_error(bad, 422)["errors"]["body"]
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed.headers
    assert set(users(db)) == {"HR-1"}


def test_a_body_too_large_leaves_the_key_free(db_url, db):
    app = create_app({"DATABASE_URL": db_url, "IMPORT_MAX_BYTES": "2048"})
    resources_of(app).pool.open(wait=True, timeout=10)
    try:
        client = app.test_client()
        too_big = post_csv(client, HEADER + ADA + "x" * 3000, "imp-8")
        left = stored(db, "imp-8")
        fixed = post_csv(client, HEADER + ADA, "imp-8")
    finally:
        resources_of(app).pool.close()

    assert too_big.status_code == 413
    assert left is None
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed.headers
    assert set(users(db)) == {"HR-1"}


def test_a_key_in_progress_is_409_without_importing(client, db, monkeypatch):
    idempotency_keys.claim(db, SCOPE, "imp-9", "pending:elsewhere", MINUTE, DAY)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the import ran")

    monkeypatch.setattr(user_import, "import_users", must_not_run)

    response = post_csv(client, HEADER + ADA, "imp-9")

    assert assert_error(response, 409)["message"].endswith("still being processed")
    assert users(db) == {}
    assert stored(db, "imp-9")["response_status"] is None


def test_a_body_of_several_chunks_is_hashed_whole_and_a_change_in_its_tail_is_seen(client, db):
    body = _ndjson_over_chunks()
    assert len(body) > 3 * user_import.CHUNK_BYTES

    first = _ndjson(client, body, "imp-10")
    again = _ndjson(client, body, "imp-10")
    changed_tail = _ndjson(client, _ndjson_over_chunks(tail=" "), "imp-10")

    assert first.status_code == 200 and first.get_json()["created"] == 2
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert "Idempotency-Key" in assert_error(changed_tail, 422)["errors"]["headers"]
    parts = {
        "query": {"dry_run": False, "delete_missing": False},
        "content_type": "application/x-ndjson",
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    expected = idempotency.fingerprint("POST", "/users/import", parts)
    assert stored(db, "imp-10")["request_fingerprint"] == expected


def test_the_hashed_body_digests_each_chunk_once_and_reads_the_rest_for_the_digest():
    data = bytes(range(256)) * 1000  # 256,000 bytes: four chunks
    body = user_import._HashedBody(io.BytesIO(data))
    chunks = iter(body)

    first = next(chunks)  # a reader that stopped after one chunk

    assert len(first) == user_import.CHUNK_BYTES
    assert body.hexdigest() == hashlib.sha256(data).hexdigest()
    assert body.hexdigest() == hashlib.sha256(data).hexdigest()  # asked again: nothing more to read


def test_the_spec_documents_the_header_beside_the_query_parameters(client):
    item = client.get("/openapi.json").get_json()["paths"]["/users/import"]

    parameters = item.get("parameters", []) + item["post"].get("parameters", [])

    assert {(p["in"], p["name"]) for p in parameters} == {
        ("header", "Idempotency-Key"),
        ("query", "dry_run"),
        ("query", "delete_missing"),
    }
    assert "409" in item["post"]["responses"]
