"""PostgreSQL stopped for seconds in the middle of a dispatch: every process waits, then
recovers by itself; every due greeting is delivered once, none FAILED or stuck, and
posted again only if a worker held it mid-send when PostgreSQL stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
import requests

from tests.delivery_stack import (
    Processes,
    Stack,
    calls_above,
    environment,
    free_port,
    insert_due_users,
    reset_shared_state,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

GREETINGS = 300
RATE = 30  # sends per second: the dispatch lasts ~10 s, long enough to cut it
DOWN_AFTER = 60  # deliveries before PostgreSQL stops
OUTAGE = 12.0  # seconds PostgreSQL stays down
HEALTH_BOUND = 3.0
WORKER_THREADS = 4


def _insert_due_users(db_url: str, count: int) -> None:
    """`count` users whose birthday is today where it is now past 09:00; the scheduler
    plans them at start."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_due_users(conn, count, "Fault")


def _scheduler_holds_the_lock(db_url: str) -> bool:
    with psycopg.connect(db_url, autocommit=True, connect_timeout=2) as conn:
        return (
            conn.execute(
                "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid)"
                " WHERE locktype = 'advisory' AND granted"
                " AND application_name LIKE 'birthday-scheduler %%'"
            ).fetchone()[0]
            == 1
        )


def _timed(method: str, url: str, **kwargs) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=10, **kwargs)
    return response.status_code, response.json(), time.monotonic() - started


def test_postgres_restart_mid_dispatch_delivers_every_greeting_once(
    private_postgres, rabbit_url, provider, tmp_path
):
    vhost, amqp_url = rabbit_url
    reset_shared_state(vhost)
    provider.reset()
    db_url = private_postgres.db_url
    env = environment(
        db_url, amqp_url, provider, PROVIDER_RATE_LIMIT=str(RATE), DB_POOL_TIMEOUT="2"
    )
    processes = Processes(env, tmp_path)
    stack = Stack(db_url, vhost, processes, provider)
    try:
        # Given a few hundred greetings due and the whole stack sending them
        _insert_due_users(db_url, GREETINGS)
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        api = processes.api(api_port, WEB_CONCURRENCY="1")
        scheduler = processes.scheduler()
        worker = processes.worker(processes=1, threads=WORKER_THREADS)
        wait_until(
            lambda: len(provider.deliveries()) >= DOWN_AFTER,
            60,
            f"{DOWN_AFTER} deliveries before the outage",
        )

        # When PostgreSQL stops (a crash) for a while in the middle of the sends
        private_postgres.stop("immediate")
        stopped = time.monotonic()
        delivered_at_stop = len(provider.deliveries())

        # Then during the outage /health says 503 within 3 s and writes get 503 JSON
        status, health, took = _timed("GET", f"{api_url}/health")
        assert status == 503, health
        assert health["checks"]["database"]["status"] == "unavailable"
        assert took < HEALTH_BOUND, f"/health took {took:.2f} s"
        user = {
            "first_name": "Ada",
            "last_name": "Outage",
            "email": "outage@example.com",
            "timezone": "UTC",
            "birthday_date": "1990-01-01",
        }
        status, body, write_took = _timed("POST", f"{api_url}/users", json=user)
        assert status == 503, body
        assert body["code"] == 503
        assert write_took < 2 + 1.5
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))

        # When it comes back, nothing is restarted by hand
        delivered_in_outage = len(provider.deliveries()) - delivered_at_stop
        private_postgres.start()
        back = time.monotonic()
        back_wall = datetime.now(UTC)
        delivered_at_back = len(provider.deliveries())
        wait_until(
            lambda: len(provider.deliveries()) > delivered_at_back,
            30,
            "a first delivery after PostgreSQL returned",
        )
        first_after = time.monotonic() - back
        wait_until(
            lambda: len(provider.deliveries()) >= GREETINGS,
            90,
            f"all {GREETINGS} greetings delivered",
        )
        all_after = time.monotonic() - back
        wait_until(
            lambda: stack.status_counts()["SENT"] == GREETINGS, 30, "every greeting recorded SENT"
        )

        # Then each greeting was delivered once, none FAILED, none stuck
        keys = [d["idempotency_key"] for d in provider.deliveries()]
        seen = provider.requests_seen()
        attempts = Counter(r["idempotency_key"] for r in seen)
        repeated = sum(n - 1 for n in attempts.values())
        counts = stack.status_counts()
        print(
            f"delivered {len(keys)} ({len(set(keys))} distinct), repeated provider "
            f"requests {repeated}, statuses {dict(counts)}, first delivery "
            f"{first_after:.2f} s and all {all_after:.2f} s after PostgreSQL returned "
            f"({delivered_at_stop} delivered before the outage, {delivered_in_outage}"
            " in flight during it)"
        )
        assert len(keys) == len(set(keys)) == GREETINGS
        assert counts == Counter({"SENT": GREETINGS, "SCHEDULED": GREETINGS}), counts
        # And posted once, but for the greetings a worker thread held between its take and
        # the commit of its SENT when PostgreSQL stopped: the SENT failed, the greeting
        # stayed SENDING, and recovery posted it once more. One per thread at most, each
        # first posted before PostgreSQL was back (nothing is taken while it is down).
        assert set(attempts) == stack.keys_with_status("SENT")
        repeats = calls_above(attempts, 1)
        assert calls_above(attempts, 2) == {}, repeats
        assert len(repeats) <= WORKER_THREADS, repeats
        posted_before_back = {
            r["idempotency_key"]
            for r in seen
            if datetime.fromisoformat(r["received_at"]) < back_wall
        }
        assert set(repeats) <= posted_before_back, repeats

        # And the scheduler leads again, the API is ready, every process still runs
        wait_until(lambda: _scheduler_holds_the_lock(db_url), 15, "the leader lock")
        wait_until(
            lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200,
            15,
            "/health 200 after the outage",
        )
        assert [p.poll() for p in (api, scheduler, worker)] == [None, None, None]
        scheduler_log = (tmp_path / "scheduler-1.log").read_text()
        assert "waiting for the database to take the leader lock" in scheduler_log
        assert "reached the database again" in scheduler_log
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop_all()


def test_worker_and_scheduler_started_with_postgres_down_wait_then_deliver(
    private_postgres, rabbit_url, provider, tmp_path
):
    vhost, amqp_url = rabbit_url
    reset_shared_state(vhost)
    provider.reset()
    db_url = private_postgres.db_url
    processes = Processes(environment(db_url, amqp_url, provider), tmp_path)
    stack = Stack(db_url, vhost, processes, provider)
    try:
        # Given greetings due and PostgreSQL down when the scheduler and worker start
        _insert_due_users(db_url, 5)
        private_postgres.stop("fast")
        scheduler = processes.scheduler()
        worker = processes.worker(processes=1, threads=2)
        scheduler_log = tmp_path / "scheduler-0.log"

        # Then both keep running, and the scheduler says what it waits for
        wait_until(
            lambda: "waiting for the database to take the leader lock" in scheduler_log.read_text(),
            15,
            "the scheduler's waiting line",
        )
        assert scheduler.poll() is None and worker.poll() is None

        # When PostgreSQL starts, the scheduler leads, plans and dispatches; the worker sends
        private_postgres.start()
        back = time.monotonic()
        wait_until(lambda: stack.status_counts()["SENT"] == 5, 30, "5 greetings SENT")
        delivered_after = time.monotonic() - back
        # nothing was in flight when PostgreSQL stopped: one call per greeting
        assert provider.calls_per_key() == Counter(dict.fromkeys(stack.keys_with_status("SENT"), 1))
        assert stack.status_counts() == Counter({"SENT": 5, "SCHEDULED": 5})
        assert _scheduler_holds_the_lock(db_url)
        assert "reached the database again" in scheduler_log.read_text()
        assert scheduler.poll() is None and worker.poll() is None
        print(f"5 delivered {delivered_after:.2f} s after PostgreSQL started")
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop_all()
