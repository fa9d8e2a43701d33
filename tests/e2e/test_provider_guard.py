"""The provider-wide breaker and rate limit on the real Redis, under keys of each test's own."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import redis

from channels.guards import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Admission,
    AdmissionVerdict,
    ProviderGuard,
)

ADMITTED, REFUSED, LIMITED = (
    AdmissionVerdict.ADMITTED,
    AdmissionVerdict.OPEN,
    AdmissionVerdict.RATE_LIMITED,
)


@pytest.fixture
def client():
    store = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    prefix = f"test-guard-{uuid.uuid4().hex[:8]}"
    yield store, prefix
    for key in store.scan_iter(f"{prefix}*"):
        store.delete(key)


def guard(client, *, per_second=1000, fail_max=3, reset=0.3, trial=5.0) -> ProviderGuard:
    store, prefix = client
    return ProviderGuard(
        store,
        sends_per_second=per_second,
        fail_max=fail_max,
        reset_timeout=timedelta(seconds=reset),
        trial_timeout=timedelta(seconds=trial),
        namespace=f"{prefix}:breaker",
        rate_key=f"{prefix}:sends",
    )


def fail(g: ProviderGuard, times: int) -> None:
    for _ in range(times):
        g.record(g.admit(), transient_failure=True)


def state(g: ProviderGuard, client) -> str:
    raw = client[0].get(g.state_key)
    return raw.decode() if raw else CLOSED


def start_of_a_second(store: redis.Redis) -> None:
    """Wait until Redis's clock is early in a second, so a few calls share it."""
    deadline = time.monotonic() + 3
    while store.time()[1] > 300_000 and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_quiet_breaker_admits_and_counts_nothing(client):
    g = guard(client)
    admission = g.admit()
    g.record(admission, transient_failure=False)
    assert admission.verdict is ADMITTED
    assert (admission.state, admission.failures) == (CLOSED, 0)
    assert state(g, client) == CLOSED


def test_the_rate_limit_refuses_the_sends_past_its_count_within_one_second(client):
    g = guard(client, per_second=3)
    start_of_a_second(client[0])
    verdicts = [g.admit().verdict for _ in range(5)]
    assert verdicts == [ADMITTED, ADMITTED, ADMITTED, LIMITED, LIMITED]


def test_the_rate_limit_admits_again_in_the_next_second(client):
    g = guard(client, per_second=1)
    start_of_a_second(client[0])
    assert [g.admit().verdict for _ in range(2)] == [ADMITTED, LIMITED]
    time.sleep(1.05)
    assert g.admit().verdict is ADMITTED


def test_fail_max_transient_failures_in_a_row_open_it_for_every_worker(client):
    g, other_worker = guard(client), guard(client)
    fail(g, 2)
    assert other_worker.admit().verdict is ADMITTED
    fail(g, 1)
    assert state(g, client) == OPEN
    assert other_worker.admit().verdict is REFUSED


def test_a_success_between_failures_starts_the_count_again(client):
    g = guard(client)
    fail(g, 2)
    g.record(g.admit(), transient_failure=False)
    fail(g, 2)
    assert state(g, client) == CLOSED
    assert g.admit().failures == 2


def test_after_the_reset_timeout_one_trial_call_goes_through_for_everyone(client):
    g, other_worker = guard(client, reset=0.3), guard(client, reset=0.3)
    fail(g, 3)
    assert g.admit().verdict is REFUSED
    time.sleep(0.35)
    trial = g.admit()
    assert (trial.verdict, trial.state) == (ADMITTED, HALF_OPEN)
    assert other_worker.admit().verdict is REFUSED  # one trial at a time
    g.record(trial, transient_failure=False)
    assert state(g, client) == CLOSED
    assert other_worker.admit().verdict is ADMITTED


def test_a_failed_trial_opens_it_again_for_a_whole_reset_timeout(client):
    g = guard(client, reset=0.3)
    fail(g, 3)
    time.sleep(0.35)
    g.record(g.admit(), transient_failure=True)
    assert state(g, client) == OPEN
    assert g.admit().verdict is REFUSED
    time.sleep(0.35)
    assert g.admit().verdict is ADMITTED


def test_a_trial_whose_worker_died_is_given_to_another_after_its_claim_expires(client):
    g = guard(client, reset=0.1, trial=0.3)
    fail(g, 3)
    time.sleep(0.15)
    assert g.admit().verdict is ADMITTED  # this worker dies: it never records
    assert g.admit().verdict is REFUSED
    time.sleep(0.35)
    assert g.admit().verdict is ADMITTED


def test_answers_to_calls_admitted_before_it_opened_change_nothing(client):
    g = guard(client, reset=30)
    early = [g.admit() for _ in range(2)]
    fail(g, 3)
    g.record(early[0], transient_failure=False)
    g.record(early[1], transient_failure=True)
    assert state(g, client) == OPEN
    assert g.admit().verdict is REFUSED


def test_a_rate_limited_trial_gives_its_claim_back(client):
    store, prefix = client
    g = guard(client, per_second=1)
    start_of_a_second(store)
    assert g.admit().verdict is ADMITTED  # this second's one send
    store.set(g.state_key, OPEN)
    store.set(f"{prefix}:breaker:opened_at", 0)  # open long enough for a trial
    assert g.admit().verdict is LIMITED
    assert store.get(f"{prefix}:breaker:trial") is None


def test_an_unreachable_redis_raises_instead_of_admitting():
    store = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    g = ProviderGuard(
        store,
        sends_per_second=10,
        fail_max=3,
        reset_timeout=timedelta(seconds=1),
        trial_timeout=timedelta(seconds=1),
    )
    with pytest.raises(redis.ConnectionError):
        g.admit()


def test_an_answer_the_breaker_cannot_count_is_logged_and_the_send_still_stands(caplog):
    from domain.delivery_policy import ChannelAnswer, Outcome
    from tasks.runtime import WorkerResources
    from tasks.send import _count_for_breaker

    away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    unreachable = ProviderGuard(
        away,
        sends_per_second=10,
        fail_max=3,
        reset_timeout=timedelta(seconds=1),
        trial_timeout=timedelta(seconds=1),
    )
    resources = WorkerResources(
        settings=None, pool=None, channel=None, guard=unreachable, takes=None, sends=None
    )
    admitted_after_failures = Admission(ADMITTED, CLOSED, failures=2)  # so it must count
    answer = ChannelAnswer(Outcome.DELIVERED, code=200, detail="{}")

    _count_for_breaker(resources, admitted_after_failures, answer)  # does not raise

    assert "not counted by the circuit breaker" in caplog.text
