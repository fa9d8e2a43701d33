"""GET /metrics, parsed with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from api.resources import resources_of
from tests.factories import ADA_BODY

BODY = ADA_BODY


def scrape(client) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = text_string_to_metric_families(response.get_data(as_text=True))
    return {family.name: family.samples for family in families}


def request_counts(client) -> dict[tuple, float]:
    samples = scrape(client)["http_requests"]
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in samples
        if s.name == "http_requests_total"
    }


def test_requests_are_counted_by_route_template_method_and_status(client):
    # Counters live for the whole process: compare before and after.
    before = request_counts(client)
    user = client.post("/users", json=BODY).get_json()
    client.get(f"/users/{user['id']}")
    client.get("/users/00000000-0000-4000-8000-000000000000")

    after = request_counts(client)

    def added(key):
        return after.get(key, 0) - before.get(key, 0)

    assert added(("POST", "/users", "201")) == 1
    assert added(("GET", "/users/<uuid:user_id>", "200")) == 1
    assert added(("GET", "/users/<uuid:user_id>", "404")) == 1
    assert not any(user["id"] in str(key) for key in after)  # no user ids in labels


def test_request_latency_is_a_histogram_in_seconds(client):
    client.get("/health/live")

    samples = scrape(client)["http_request_duration_seconds"]

    buckets = [
        s for s in samples if s.name.endswith("_bucket") and s.labels["route"] == "/health/live"
    ]
    assert buckets and buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value >= 1


def test_messages_are_counted_by_status_and_type(client):
    client.post("/users", json={**BODY, "anniversary_date": "2015-06-20"})

    samples = scrape(client)["birthday_messages"]

    values = {(s.labels["status"], s.labels["message_type"]): s.value for s in samples}
    assert values[("SCHEDULED", "BIRTHDAY")] == 1
    assert values[("SCHEDULED", "ANNIVERSARY")] == 1


def test_the_due_backlog_and_its_oldest_age_are_reported(client, db_url):
    user = client.post("/users", json=BODY).get_json()
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE message_logs SET next_attempt_at = %s WHERE user_id = %s",
            (datetime.now(UTC) - timedelta(minutes=10), user["id"]),
        )

    metrics = scrape(client)

    assert metrics["birthday_due_backlog"][0].value == 1
    assert 590 <= metrics["birthday_oldest_due_age_seconds"][0].value <= 900


def test_scheduler_breaker_and_pool_families_are_present(client, db_url):
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO scheduler_heartbeats (job, leader, last_started_at, last_success_at)"
            " VALUES ('dispatch', 'host:7', now(), now())"
        )

    metrics = scrape(client)

    [job] = metrics["birthday_scheduler_last_success_timestamp_seconds"]
    assert job.labels == {"job": "dispatch"} and job.value > 1.7e9
    assert metrics["birthday_scheduler_leader"][0].labels == {"leader": "host:7"}
    assert metrics["birthday_provider_breaker_state"][0].value in {0, 1, 2}
    kinds = {s.labels["kind"] for s in metrics["birthday_db_pool_connections"]}
    assert kinds == {"size", "available", "waiting"}


def test_partition_gauges_report_future_months_and_a_filled_default(client, db_url):
    assert scrape(client)["birthday_partition_default_has_rows"][0].value == 0
    resources_of(client.application).state_collector.forget()
    user = client.post("/users", json=BODY).get_json()
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,"
            " scheduled_send_time, idempotency_key) VALUES (%(u)s, 'BIRTHDAY', %(d)s, 'Hey',"
            " %(d)s::date + time '09:00', message_idempotency_key(%(u)s, 'BIRTHDAY', %(d)s))",
            {"u": user["id"], "d": "2100-01-05"},
        )
    resources_of(client.application).state_collector.forget()

    metrics = scrape(client)

    assert metrics["birthday_partition_default_has_rows"][0].value == 1
    assert metrics["birthday_partitions_future"][0].value >= 1
