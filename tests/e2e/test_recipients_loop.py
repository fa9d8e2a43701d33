"""The whole loop on real processes: the API, a worker and a scheduler send a greeting
through the local provider (over each channel), the provider reports it delivered on
its signed webhook, then reports a hard bounce, and the address is suppressed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from tests.delivery_stack import (
    Processes,
    Provider,
    Stack,
    environment,
    free_port,
    reset_shared_state,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["http", "smtp"])
def loop(request, fresh_db_url, rabbit_url, tmp_path):
    """The service with a provider that posts its events to the service's API."""
    vhost, amqp_url = rabbit_url
    reset_shared_state(vhost)
    api_port = free_port()
    provider = Provider(
        channel=request.param, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/provider"
    )
    processes = Processes(environment(fresh_db_url, amqp_url, provider), tmp_path)
    try:
        processes.api(api_port)
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _answers(f"{api}/health/live"), 30, "the API to start")
        processes.worker()
        processes.scheduler()
        yield Stack(fresh_db_url, vhost, processes, provider), api
    finally:
        processes.stop_all()
        provider.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def test_delivered_then_a_hard_bounce_suppresses_the_address(loop):
    stack, api = loop
    user = stack.create_user(datetime.now(UTC))

    # Sent, then reported delivered by the provider's webhook
    def delivered_row():
        rows = [r for r in stack.rows(user["id"]) if r["status"] == "SENT"]
        return rows and rows[0]["delivered_at"] is not None and rows[0]

    sent = wait_until(delivered_row, 60, "the greeting SENT and reported delivered")
    events = requests.get(f"{stack.provider.url}/events", timeout=5).json()
    assert [e["status"] for e in events] == [200]
    assert stack.provider.calls_per_key()[sent["idempotency_key"]] == 1

    # A hard bounce reported by the provider suppresses the address
    bounce = {"type": "bounce", "bounce_type": "hard", "email": user["email"].upper()}
    requests.post(f"{stack.provider.url}/events", json=bounce, timeout=5).raise_for_status()
    wait_until(
        lambda: requests.get(f"{api}/suppressions/{user['email']}", timeout=5).ok,
        30,
        "the address suppressed",
    )
    listed = requests.get(f"{api}/suppressions/{user['email']}", timeout=5).json()
    assert (listed["reason"], listed["source"]) == ("bounce", "webhook")
    pending = [r for r in stack.rows(user["id"]) if r["status"] != "SENT"]
    assert {r["status"] for r in pending} <= {"CANCELLED"}
