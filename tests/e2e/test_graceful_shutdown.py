"""SIGTERM on real processes: the API (gunicorn), a worker (dramatiq) and the scheduler
each stop cleanly, finishing the work they hold instead of dropping it.

Slow work is made with real waits: a row lock held by the test (API, scheduler) or
the local provider's delay_ms (worker).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from dramatiq.cli import RET_KILLED, RET_OK
from psycopg.rows import dict_row

from tests.delivery_stack import (
    Processes,
    Stack,
    environment,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

API_TOKEN = "graceful-shutdown-test-token"
GRACEFUL_TIMEOUT = 10  # GUNICORN_GRACEFUL_TIMEOUT given to the API under test
LOCK_HELD_AFTER_SIGTERM = 1.0
# The in-flight send has at most 2 s of provider delay left; dramatiq's processes look
# for the stop flag once a second. Far below dramatiq's shutdown timeout (10 min).
WORKER_STOP_BOUND = 15


# --- the API --------------------------------------------------------------------------


class Api:
    def __init__(self, process, port: int, db_url: str) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.db_url = db_url
        self.auth = {"Authorization": f"Bearer {API_TOKEN}"}

    def live(self) -> bool:
        try:
            return requests.get(f"{self.url}/health/live", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def create_user(self) -> dict:
        body = {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "timezone": "Europe/London",
            "email": f"graceful{uuid.uuid4().hex[:8]}@example.com",
            "birthday_date": "1990-12-10",
        }
        response = requests.post(f"{self.url}/users", json=body, headers=self.auth, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def api(db_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BIND": f"127.0.0.1:{port}",
        "API_TOKEN": API_TOKEN,
        "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    processes = Processes(env, tmp_path)
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
    server = Api(processes.start("api", command), port, db_url)
    wait_until(server.live, 30, "gunicorn to answer /health/live")
    yield server
    processes.stop_all()


def _waiting_for_a_row_lock(db_url: str, statement: str) -> bool:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE %s",
                (f"%{statement}%",),
            ).fetchone()[0]
            > 0
        )


def _shut_down_during_a_locked_patch(api: Api) -> dict:
    """PATCH a user whose row the test holds locked, SIGTERM the master while the PATCH
    waits, release the lock a second later; returns what happened."""
    user = api.create_user()
    with ThreadPoolExecutor(1) as pool, psycopg.connect(api.db_url) as locker:
        locker.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        patch = pool.submit(
            requests.patch,
            f"{api.url}/users/{user['id']}",
            json={"first_name": "Grace"},
            headers=api.auth,
            timeout=30,
        )
        wait_until(lambda: _waiting_for_a_row_lock(api.db_url, "FOR UPDATE"), 10, "the PATCH")
        signalled = time.monotonic()
        api.process.send_signal(signal.SIGTERM)
        time.sleep(LOCK_HELD_AFTER_SIGTERM)
        running_while_draining = api.process.poll() is None
        locker.commit()
        response = patch.result(timeout=30)
        code = api.process.wait(timeout=GRACEFUL_TIMEOUT + 5)
        stopped_after = time.monotonic() - signalled
    with psycopg.connect(api.db_url) as conn:
        stored = conn.execute("SELECT first_name FROM users WHERE id = %s", (user["id"],))
        first_name = stored.fetchone()[0]
    return {
        "response": response,
        "code": code,
        "stopped_after": stopped_after,
        "running_while_draining": running_while_draining,
        "stored_first_name": first_name,
    }


def test_sigterm_lets_an_in_flight_request_finish_and_gunicorn_exit_0(api):
    outcome = _shut_down_during_a_locked_patch(api)

    assert outcome["running_while_draining"]  # the master waited for the request
    assert outcome["response"].status_code == 200, outcome["response"].text
    assert outcome["response"].json()["first_name"] == "Grace"
    assert outcome["stored_first_name"] == "Grace"
    assert outcome["code"] == 0
    assert LOCK_HELD_AFTER_SIGTERM <= outcome["stopped_after"] < GRACEFUL_TIMEOUT


def test_after_sigterm_gunicorn_refuses_new_connections_and_leaves_no_process(api):
    _shut_down_during_a_locked_patch(api)

    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", api.port), timeout=3),
    ):
        pass
    with pytest.raises(ProcessLookupError):  # no gunicorn worker outlived its master
        os.killpg(api.process.pid, 0)


# --- the worker -----------------------------------------------------------------------


def _statuses(stack: Stack, user_id) -> list[str]:
    return sorted(row["status"] for row in stack.rows(user_id))


def _send_in_flight(stack: Stack):
    """A due greeting, a scheduler and one worker busy on a 2 s provider call."""
    stack.provider.control(delay_ms=2000)
    user = stack.create_user()
    stack.processes.scheduler()
    worker = stack.processes.worker()
    wait_until(lambda: stack.provider.requests_seen(), 30, "the provider to receive the send")
    return user, worker


def test_sigterm_to_the_dramatiq_master_finishes_the_in_flight_greeting_and_exits_0(stack):
    user, worker = _send_in_flight(stack)
    assert _statuses(stack, user["id"]) == ["SENDING"]

    worker.send_signal(signal.SIGTERM)  # as `docker stop` and deploy/keep-running send it

    assert worker.wait(timeout=WORKER_STOP_BOUND) == RET_OK
    assert _statuses(stack, user["id"]) == ["SCHEDULED", "SENT"]  # no other worker ran
    [sent] = [row for row in stack.rows(user["id"]) if row["status"] == "SENT"]
    assert sent["retry_count"] == 0
    assert stack.provider.calls_per_key() == Counter({sent["idempotency_key"]: 1})
    assert len(stack.provider.deliveries()) == 1


def test_sigterm_to_the_worker_process_group_loses_and_duplicates_no_greeting(stack):
    user, worker = _send_in_flight(stack)

    os.killpg(worker.pid, signal.SIGTERM)  # as honcho and systemd (KillMode=control-group) do
    code = worker.wait(timeout=WORKER_STOP_BOUND)
    stack.provider.control(delay_ms=0)
    stack.processes.worker()
    wait_until(lambda: "SENT" in _statuses(stack, user["id"]), 45, "the greeting to be SENT")

    # Either the worker finished the send (exit 0) or it was killed by the second SIGTERM
    # its master forwards (exit 1) and recovery re-sent it once the lease ran out; a
    # worker of ours dying never uses up one of the provider's retries.
    assert code in (RET_OK, RET_KILLED)
    assert _statuses(stack, user["id"]) == ["SCHEDULED", "SENT"]
    [sent] = [row for row in stack.rows(user["id"]) if row["status"] == "SENT"]
    assert sent["retry_count"] == 0
    assert len(stack.provider.deliveries()) == 1
    # A finished send was posted once. A worker killed while the provider held its call
    # left the greeting SENDING, so recovery posted it once more: never a third time.
    calls = stack.provider.calls_per_key()
    assert set(calls) == {sent["idempotency_key"]}
    assert calls[sent["idempotency_key"]] <= (1 if code == RET_OK else 2)


def _child_processes(pid: int) -> list[int]:
    found = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(line) for line in found.stdout.split()]


def test_a_supervised_worker_stopped_as_honcho_stops_it_finishes_the_send(stack):
    # `make run`: honcho signals the whole process group of deploy/keep-running. The
    # worker runs in a group of its own, so it gets exactly one SIGTERM (from
    # keep-running) and its worker processes one (from the dramatiq master).
    stack.provider.control(delay_ms=2000)
    user = stack.create_user()
    stack.processes.scheduler()
    runner = stack.processes.supervised_worker()
    wait_until(lambda: stack.provider.requests_seen(), 30, "the provider to receive the send")

    os.killpg(runner.pid, signal.SIGTERM)

    assert runner.wait(timeout=WORKER_STOP_BOUND) == 0
    assert _statuses(stack, user["id"]) == ["SCHEDULED", "SENT"]  # finished, not abandoned
    [sent] = [row for row in stack.rows(user["id"]) if row["status"] == "SENT"]
    assert sent["retry_count"] == 0
    assert stack.provider.calls_per_key() == Counter({sent["idempotency_key"]: 1})
    assert "Killing worker process" not in stack.processes.logs()


# --- the scheduler --------------------------------------------------------------------


def _heartbeat(db_url: str, job: str) -> dict | None:
    with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as conn:
        return conn.execute("SELECT * FROM scheduler_heartbeats WHERE job = %s", (job,)).fetchone()


def _running(db_url: str, job: str) -> bool:
    """The job started after its last success: it is running now."""
    beat = _heartbeat(db_url, job)
    return bool(
        beat and beat["last_success_at"] and beat["last_started_at"] > beat["last_success_at"]
    )


def test_sigterm_during_a_dispatch_lets_the_job_finish_and_the_scheduler_exit_0(
    fresh_db_url, rabbit_url, provider, tmp_path
):
    # Only dispatch repeats (every second), so it is the job caught by the lock.
    env = environment(fresh_db_url, rabbit_url[1], provider, RECOVERY_INTERVAL_SECONDS="3600")
    processes = Processes(env, tmp_path)
    try:
        scheduler = processes.scheduler()
        wait_until(
            lambda: (_heartbeat(fresh_db_url, "cleanup_keys") or {}).get("last_success_at"),
            30,
            "the scheduler's first round of jobs",
        )
        with psycopg.connect(fresh_db_url) as locker:
            locker.execute("LOCK TABLE message_logs IN EXCLUSIVE MODE")  # dispatch blocks
            wait_until(lambda: _running(fresh_db_url, "dispatch"), 10, "a blocked dispatch")
            os.killpg(scheduler.pid, signal.SIGTERM)
            time.sleep(LOCK_HELD_AFTER_SIGTERM)
            running_during_the_job = scheduler.poll() is None
            locker.commit()
        code = scheduler.wait(timeout=15)
    finally:
        processes.stop_all()

    assert running_during_the_job
    assert code == 0
    dispatch = _heartbeat(fresh_db_url, "dispatch")
    assert dispatch["last_success_at"] >= dispatch["last_started_at"]
    assert dispatch["last_error"] is None
