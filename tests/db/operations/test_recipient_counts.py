"""Unsubscribed users and suppressed addresses, on the status page and in /metrics."""

from __future__ import annotations

from tests.factories import create_user


def test_the_status_page_and_metrics_count_opt_outs_and_suppressions(client):
    for _ in range(2):
        user = create_user(client)
        client.post(f"/users/{user['id']}/unsubscribe", json={"occasions": ["ANNIVERSARY"]})
    client.delete(f"/users/{user['id']}")  # a deleted user no longer counts
    client.post("/suppressions", json={"email": "x@example.com", "reason": "bounce"})
    client.post("/suppressions", json={"email": "y@example.com", "reason": "complaint"})

    page = client.get("/status").get_data(as_text=True)
    metrics = client.get("/metrics").get_data(as_text=True).splitlines()

    assert 'data-figure="suppressed">2<' in page
    assert 'data-suppressed="bounce">1<' in page
    assert 'data-unsubscribed="ANNIVERSARY">1<' in page
    assert 'data-unsubscribed="BIRTHDAY">0<' in page
    assert 'birthday_unsubscribed_users{message_type="ANNIVERSARY"} 1.0' in metrics
    assert 'birthday_suppressed_addresses{reason="complaint"} 1.0' in metrics
    assert 'birthday_suppressed_addresses{reason="manual"} 0.0' in metrics
