"""The delivery promise under faults of our own infrastructure, on real processes.

Each test breaks one thing (Redis, RabbitMQ connections, workers, the leader, the
provider) while greetings are due, and counts what the provider received and what
the database holds: nothing FAILED by our own faults, nothing stuck, nothing later
than MAX_LATENESS, and each greeting posted once. The posts are counted as the
provider received them, per Idempotency-Key, not as it delivered them: the provider
delivers a key once however often it is posted, so only the raw calls show a
greeting taken twice. A test allows a key more than one call only where its fault
can cause it, and says why.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from repositories import occurrences
from tests.delivery_stack import (
    NINE,
    Stack,
    calls_above,
    free_port,
    insert_due_users,
    messages_in_queue,
    rabbitmqctl,
    wait_until,
)
from users import directory as users_service

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


def add_due_users(stack: Stack, count: int) -> None:
    """`count` users whose birthday greeting is due now (the scheduler plans them)."""
    with stack.connect() as conn:
        insert_due_users(conn, count, "Fault")


def assert_each_sent_greeting_posted_once(stack: Stack, expected: int) -> None:
    """`expected` greetings SENT, and the provider received exactly one call for each
    and none for anything else: for faults that cannot make a greeting's call repeat."""
    calls = stack.provider.calls_per_key()
    sent = stack.keys_with_status("SENT")
    assert len(sent) == expected
    assert calls_above(calls, 1) == {}
    assert set(calls) == sent


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop and start at will."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, 10, "the private Redis to start")

    def _answers(self) -> bool:
        import redis

        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


REDIS_OUTAGE = 16.0  # seconds: more than three sending leases (5 s each)


def postponed_for_want_of(redis: PrivateRedis, rows: list[dict]) -> list[dict]:
    """The rows a worker took and put back because it could not reach `redis`: only the
    worker's postponement writes this error (the cause, naming Redis's address)."""
    cause, address = "worker could not send: ConnectionError: ", f"127.0.0.1:{redis.port}"
    return [
        row
        for row in rows
        if (row["error_message"] or "").startswith(cause) and address in row["error_message"]
    ]


def test_redis_unreachable_for_several_leases_fails_nothing_and_delivers_all_after(
    stack, private_redis
):
    # Given workers whose Redis (rate limit, breaker) goes away while 20 greetings are due
    stack.processes.worker(threads=4, REDIS_URL=private_redis.url, DEPENDENCY_RETRY_DELAY="1s")
    private_redis.stop()
    down_since = time.monotonic()
    add_due_users(stack, 20)
    stack.processes.scheduler(REDIS_URL=private_redis.url)

    # When Redis stays away for more than three sending leases, every greeting is taken
    # by the worker meanwhile and put back for want of Redis
    wait_until(
        lambda: len(postponed_for_want_of(private_redis, stack.rows())) == 20,
        REDIS_OUTAGE + 30,
        "every greeting taken and postponed for want of Redis",
    )
    # Redis stays away for the whole outage (its length, not a check)
    time.sleep(max(0.0, REDIS_OUTAGE - (time.monotonic() - down_since)))
    during = stack.rows()
    calls_during = stack.provider.calls_per_key()
    private_redis.start()

    # Then meanwhile nothing was FAILED or sent, and the postponements used no retry
    assert len(during) == 20 and not {"FAILED", "SENT"} & {row["status"] for row in during}
    assert calls_during == Counter()
    assert len(postponed_for_want_of(private_redis, during)) == 20
    assert {(row["retry_count"], row["api_response_code"]) for row in during} == {(0, None)}

    # And all go out once after it returns, still with no retry used
    wait_until(lambda: stack.status_counts()["SENT"] == 20, 60, "20 greetings after Redis")
    assert_each_sent_greeting_posted_once(stack, 20)
    assert stack.status_counts() == Counter({"SENT": 20, "SCHEDULED": 20})
    assert {row["retry_count"] for row in stack.rows() if row["status"] == "SENT"} == {0}


def start_lateness_window_now(stack: Stack) -> None:
    """Every greeting's lateness window starts now (as an operator's retry sets it): the
    planned 09:00 local is hours ago in a due zone, so counting from it a short
    MAX_LATENESS would be over before anything could queue them."""
    with stack.connect() as conn:
        occurrences.plan_next_occurrences(conn, datetime.now(UTC), NINE)
        conn.execute("UPDATE message_logs SET lateness_from = now()")


def past_their_deadline(stack: Stack, max_lateness: str) -> bool:
    """Every unfinished greeting is past its deadline by the database's clock."""
    with stack.connect() as conn:
        return conn.execute(
            "SELECT bool_and(lateness_from + %(late)s::interval < now()) AS past"
            " FROM message_logs WHERE status IN ('SCHEDULED', 'QUEUED')",
            {"late": max_lateness},
        ).fetchone()["past"]


def test_workers_down_past_max_lateness_expire_queued_greetings_unsent(stack):
    # Given a scheduler that queued 5 greetings within their 30 s deadline, published
    # them, and stopped (30 s of margin for a loaded machine to queue them in time)
    late = "30s"
    add_due_users(stack, 5)
    start_lateness_window_now(stack)
    scheduler = stack.processes.scheduler(MAX_LATENESS=late)
    wait_until(
        lambda: stack.status_counts()["QUEUED"] == 5 and messages_in_queue(stack.vhost) >= 5,
        30,
        "5 greetings QUEUED and published",
    )
    stack.processes.stop(scheduler)  # nothing else expires them now: only the worker can

    # When the workers come back only after the deadline
    wait_until(lambda: past_their_deadline(stack, late), 45, "the greetings' deadline")
    assert stack.status_counts() == Counter({"QUEUED": 5})
    worker = stack.processes.worker(MAX_LATENESS=late)
    wait_until(
        lambda: stack.status_counts()["QUEUED"] == 0 and messages_in_queue(stack.vhost) == 0,
        30,
        "the worker to take and acknowledge all 5",
    )

    # Then the worker expired each one it took, none reached the provider, and next
    # year's greetings are planned
    assert stack.provider.calls_per_key() == Counter()
    assert stack.status_counts() == Counter({"EXPIRED": 5, "SCHEDULED": 5})
    expired = [row for row in stack.rows() if row["status"] == "EXPIRED"]
    assert {row["error_message"] for row in expired} == {"not sent within 00:00:30 of its time"}
    assert stack.processes.log_of(worker).count("greeting expired before the send") == 5
    years = {row["occasion_date"].year for row in stack.rows() if row["status"] == "SCHEDULED"}
    assert len(years) == 1 and years.pop() > datetime.now(UTC).year - 1


def test_a_worker_killed_mid_send_three_times_delivers_once_and_never_fails(stack):
    # Given a slow provider and a greeting due, with at most 2 provider retries
    stack.provider.control(delay_ms=3000)
    user = stack.create_user()
    stack.processes.scheduler(MAX_RETRIES="2")

    # When the worker is killed during the send three times in a row
    workers = []
    for crash in range(1, 4):
        workers.append(stack.processes.worker(MAX_RETRIES="2"))
        wait_until(
            lambda n=crash: len(stack.provider.requests_seen()) >= n, 40, f"send attempt {crash}"
        )
        stack.processes.kill_hard(workers[-1])
    stack.provider.control(delay_ms=0)
    workers.append(stack.processes.worker(MAX_RETRIES="2"))

    # Then it is delivered once, no retry was used up, and it was never FAILED
    wait_until(lambda: [r for r in stack.rows(user["id"]) if r["status"] == "SENT"], 60, "the send")
    [sent] = [r for r in stack.rows(user["id"]) if r["status"] == "SENT"]
    assert sent["retry_count"] == 0
    assert len(stack.provider.deliveries()) == 1
    # Each kill came after the provider received the call and before the SENT was
    # committed, so recovery sent again: three calls lost with their workers, then the
    # one answered.
    assert stack.provider.calls_per_key() == Counter({sent["idempotency_key"]: 4})
    # And each killed worker's message, redelivered to the next worker while the
    # greeting was still SENDING under the dead worker's lease, found it taken and did
    # nothing: every resend waited for recovery, none followed a redelivery.
    logs = "".join(stack.processes.log_of(worker) for worker in workers)
    assert logs.count("greeting not QUEUED any more, skipped") >= 3


def close_vhost_connections(vhost: str) -> int:
    listed = rabbitmqctl("list_connections", "pid", "vhost")
    pids = [
        line.split()[0]
        for line in listed.stdout.splitlines()
        if line.split() and line.split()[-1] == vhost
    ]
    for pid in pids:
        rabbitmqctl("close_connection", pid, "fault test")
    return len(pids)


def test_rabbitmq_connections_dropped_twice_mid_dispatch_deliver_1000_once(stack):
    # Given 1,000 greetings due, two workers and a scheduler, and a provider slow enough
    # (16 threads at 0.2 s a call: about 80 sends/s) that sends are in flight whenever
    # the connections drop, so their messages come back to workers after they were taken
    stack.provider.control(delay_ms=200)
    add_due_users(stack, 1000)
    stack.processes.scheduler()
    workers = [stack.processes.worker(processes=1, threads=8) for _ in range(2)]

    # When every connection of the vhost is closed twice while they are sent
    wait_until(lambda: stack.status_counts()["SENT"] >= 100, 60, "sending under way")
    assert close_vhost_connections(stack.vhost) >= 1
    wait_until(lambda: stack.status_counts()["SENT"] >= 400, 90, "sending again")
    assert close_vhost_connections(stack.vhost) >= 1

    # Then workers and scheduler reconnect by themselves and each is posted once: the
    # workers live on, so a send in flight finishes and its redelivered message finds
    # the greeting taken
    wait_until(lambda: stack.status_counts()["SENT"] == 1000, 150, "1,000 greetings SENT")
    assert_each_sent_greeting_posted_once(stack, 1000)
    assert stack.status_counts() == Counter({"SENT": 1000, "SCHEDULED": 1000})
    # (the drops did bring messages of greetings already taken back to the workers)
    logs = "".join(stack.processes.log_of(worker) for worker in workers)
    assert "greeting not QUEUED any more, skipped" in logs


def test_a_long_provider_outage_fails_nothing_and_probes_instead_of_storming(stack):
    # Given 500 greetings due and a provider answering 503 to everything
    stack.provider.control(fail_status=503, fail_count=10**9)
    add_due_users(stack, 500)
    stack.processes.scheduler()
    stack.processes.worker(processes=1, threads=8)

    # When the outage lasts several breaker reset timeouts (3 s each)
    wait_until(lambda: len(stack.provider.requests_seen()) >= 3, 30, "failing sends")
    time.sleep(12)
    calls_during_outage = len(stack.provider.requests_seen())
    during = stack.status_counts()
    stack.provider.control(fail_count=0)

    # Then nothing was FAILED, calls stayed bounded, and all go out once afterwards
    wait_until(lambda: stack.status_counts()["SENT"] == 500, 150, "500 greetings after")
    assert during["FAILED"] == 0
    # 3 to open the breaker, then about one probe per reset timeout, not 500 per round
    assert calls_during_outage < 50
    # Each failed call the provider received counted one attempt of its greeting (the
    # breaker's refusals reached no one), then one call succeeded: a greeting's calls
    # are its retry count plus one, exactly.
    calls = stack.provider.calls_per_key()
    sent = [row for row in stack.rows() if row["status"] == "SENT"]
    retries = {row["idempotency_key"]: row["retry_count"] for row in sent}
    assert len(retries) == 500
    assert {key: calls[key] - 1 for key in calls} == retries


def test_killing_the_leader_mid_dispatch_lets_the_other_deliver_each_once(stack):
    # Given two schedulers and a worker, with 300 greetings due
    add_due_users(stack, 300)
    first = stack.processes.scheduler()
    stack.processes.scheduler()
    stack.processes.worker(processes=1, threads=8)
    wait_until(lambda: stack.status_counts()["SENT"] >= 30, 60, "sending under way")

    # When the leader is killed (whichever holds the lock: kill the first, then check)
    leader_pid = _leader_pid(stack)
    victim = (
        next(p for p in stack.processes.running if p.pid == leader_pid) if leader_pid else first
    )
    stack.processes.kill_hard(victim)

    # Then the other takes over and every greeting is posted once (no worker died: a
    # greeting the new leader publishes again is taken by one of its messages only)
    wait_until(lambda: stack.status_counts()["SENT"] == 300, 90, "300 greetings SENT")
    assert_each_sent_greeting_posted_once(stack, 300)


def _leader_pid(stack: Stack) -> int | None:
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
        ).fetchone()
    if row is None:
        return None
    return int(row["application_name"].rsplit(":", 1)[-1])


def test_a_patch_during_a_slow_send_gives_next_year_the_new_name(stack):
    # Given a greeting being sent to a slow provider
    stack.provider.control(delay_ms=2500)
    user = stack.create_user()
    stack.processes.scheduler()
    stack.processes.worker()
    wait_until(lambda: stack.provider.requests_seen(), 30, "the send to start")

    # When the user's name changes while the provider is answering
    with stack.connect() as conn, conn.transaction():
        users_service.patch_user(conn, user["id"], {"first_name": "Grace"}, datetime.now(UTC), NINE)

    # Then next year's greeting carries the new name
    wait_until(lambda: [r for r in stack.rows(user["id"]) if r["status"] == "SENT"], 30, "the send")
    [planned] = [r for r in stack.rows(user["id"]) if r["status"] == "SCHEDULED"]
    assert planned["message_content"].startswith("Hey, Grace ")
    assert planned["occasion_date"] > datetime.now(UTC).date() + timedelta(days=300)
