"""The scheduler as real processes (`python -m tasks.scheduler`) on the real PostgreSQL,
publishing to a RabbitMQ vhost of its own: leader election through the advisory lock,
heartbeats per job, the first round, the dispatch cadence, clean shutdown, a failing
job, and planning at start. No worker runs: nothing consumes what is published.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pika
import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from tasks.leader import LEADER_LOCK_KEY
from tests.delivery_stack import (
    Processes,
    environment,
    free_port,
    rabbitmqctl,
    reset_shared_state,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
JOBS = {"dispatch", "recover", "plan", "partitions", "cleanup_keys"}
HOSTNAME = socket.gethostname()
APP_NAME_LIMIT = 63  # PostgreSQL truncates application_name to NAMEDATALEN - 1


class SchedulerStack:
    """Schedulers on a private database, and what PostgreSQL and RabbitMQ say of them."""

    def __init__(self, db_url: str, vhost: str, amqp_url: str, processes: Processes) -> None:
        self.db_url = db_url
        self.vhost = vhost
        self.amqp_url = amqp_url
        self.processes = processes

    def start(self, **extra_env: str) -> subprocess.Popen:
        return self.processes.start(
            "scheduler", [sys.executable, "-m", "tasks.scheduler"], **extra_env
        )

    @staticmethod
    def name(process: subprocess.Popen) -> str:
        """The scheduler's own name: start_new_session makes the Popen pid the python one."""
        return f"{HOSTNAME}:{process.pid}"

    def lock_app_name(self, process: subprocess.Popen) -> str:
        return f"birthday-scheduler {self.name(process)}"[:APP_NAME_LIMIT]

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, row_factory=dict_row, autocommit=True)

    def heartbeats(self) -> dict[str, dict]:
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM scheduler_heartbeats").fetchall()
        return {row["job"]: row for row in rows}

    def heartbeat(self, job: str) -> dict | None:
        return self.heartbeats().get(job)

    def lock_holders(self) -> list[str]:
        """application_name of every backend of this database holding the leader lock."""
        with self.connect() as conn:
            rows = conn.execute(
                """
                SELECT a.application_name
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted
                  AND l.database = (SELECT oid FROM pg_database
                                    WHERE datname = current_database())
                  AND l.classid = %(high)s::bigint::oid AND l.objid = %(low)s::bigint::oid
                  AND l.objsubid = 1
                """,
                {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF},
            ).fetchall()
        return sorted(row["application_name"] for row in rows)

    def advisory_locks(self) -> list[dict]:
        """Every advisory lock granted in this database, whatever its key."""
        with self.connect() as conn:
            return conn.execute(
                "SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'"
                " AND granted AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"
            ).fetchall()

    def connected_app_names(self) -> set[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchall()
        return {row["application_name"] for row in rows}

    def both_competing(self, *processes: subprocess.Popen) -> bool:
        """Each process has opened its leader connection, hence tried the lock."""
        return {self.lock_app_name(p) for p in processes} <= self.connected_app_names()

    def record_heartbeat_writes(self) -> None:
        """Log every insert and update of scheduler_heartbeats (private database only)."""
        with self.connect() as conn:
            conn.execute(
                """
                CREATE TABLE test_heartbeat_writes (leader text NOT NULL);
                CREATE FUNCTION test_log_heartbeat_write() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO test_heartbeat_writes (leader) VALUES (NEW.leader);
                    RETURN NEW;
                END
                $$;
                CREATE TRIGGER test_heartbeat_writes AFTER INSERT OR UPDATE
                    ON scheduler_heartbeats FOR EACH ROW
                    EXECUTE FUNCTION test_log_heartbeat_write();
                """
            )

    def heartbeat_writers(self) -> set[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT DISTINCT leader FROM test_heartbeat_writes").fetchall()
        return {row["leader"] for row in rows}

    def queue_depths(self) -> dict[str, int]:
        listed = rabbitmqctl(
            "list_queues", "--no-table-headers", "-p", self.vhost, "name", "messages"
        )
        assert listed.returncode == 0, listed.stderr
        return {
            name: int(count)
            for name, count in (line.split() for line in listed.stdout.splitlines() if line.strip())
        }

    def peek(self, queue: str) -> dict | None:
        """One message's decoded body, left in the queue (not acknowledged)."""
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            method, _properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return None
            channel.basic_nack(method.delivery_tag, requeue=True)
            return json.loads(body)
        finally:
            connection.close()

    def log_of(self, process: subprocess.Popen) -> str:
        index = self.processes.running.index(process)
        return (self.processes.log_dir / f"scheduler-{index}.log").read_text()


@pytest.fixture
def stack(fresh_db_url, rabbit_url, tmp_path):
    """Schedulers only: no worker runs, so the provider URL points nowhere."""
    vhost, url = rabbit_url
    reset_shared_state(vhost)
    env = environment(fresh_db_url, url, f"http://127.0.0.1:{free_port()}")
    processes = Processes(env, tmp_path)
    yield SchedulerStack(fresh_db_url, vhost, url, processes)
    processes.stop_all()


def finished(row: dict | None) -> bool:
    return row is not None and (row["last_success_at"] is not None or row["last_error"] is not None)


def elected(stack: SchedulerStack, *processes: subprocess.Popen) -> subprocess.Popen:
    """Wait until both compete and one has written a heartbeat; return that one."""
    wait_until(lambda: stack.both_competing(*processes), 20, "every scheduler to try the lock")
    row = wait_until(lambda: stack.heartbeat("dispatch"), 20, "a dispatch heartbeat")
    by_name = {stack.name(p): p for p in processes}
    assert row["leader"] in by_name, f"{row['leader']} is none of {sorted(by_name)}"
    return by_name[row["leader"]]


def test_two_schedulers_started_together_elect_exactly_one_leader(stack):
    first, second = stack.start(), stack.start()

    leader = elected(stack, first, second)

    assert stack.lock_holders() == [stack.lock_app_name(leader)]
    assert first.poll() is None and second.poll() is None


def test_the_follower_writes_no_heartbeat_while_the_leader_lives(stack):
    stack.record_heartbeat_writes()
    first, second = stack.start(), stack.start()
    leader = elected(stack, first, second)
    wait_until(lambda: finished(stack.heartbeat("cleanup_keys")), 20, "the first round")

    leaders_seen: set[str] = set()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        leaders_seen |= {row["leader"] for row in stack.heartbeats().values()}
        time.sleep(0.2)

    assert leaders_seen == {stack.name(leader)}
    assert stack.heartbeat_writers() == {stack.name(leader)}  # every write, not just samples
    assert first.poll() is None and second.poll() is None  # both lived throughout


def test_killing_the_leader_makes_the_other_take_over_within_seconds(stack):
    first, second = stack.start(), stack.start()
    leader = elected(stack, first, second)
    follower = second if leader is first else first

    stack.processes.kill_hard(leader)

    wait_until(
        lambda: stack.heartbeat("dispatch")["leader"] == stack.name(follower),
        5,
        "the follower to write the dispatch heartbeat",
    )
    assert stack.lock_holders() == [stack.lock_app_name(follower)]
    assert follower.poll() is None


def test_the_first_round_runs_every_job_at_start(stack):
    scheduler = stack.start()

    rows = wait_until(
        lambda: (
            (beats := stack.heartbeats()).keys() == JOBS
            and all(finished(row) for row in beats.values())
            and beats
        ),
        20,
        "a finished heartbeat for every job",
    )

    assert {job: row["last_error"] for job, row in rows.items()} == dict.fromkeys(JOBS)
    assert all(row["last_success_at"] is not None for row in rows.values())
    assert {row["leader"] for row in rows.values()} == {stack.name(scheduler)}


def test_dispatch_runs_every_dispatch_interval(stack):
    stack.start()
    wait_until(lambda: finished(stack.heartbeat("dispatch")), 20, "the first dispatch")

    successes: set[datetime] = set()
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        successes.add(stack.heartbeat("dispatch")["last_success_at"])
        time.sleep(0.1)

    assert None not in successes
    assert len(successes) >= 3, sorted(successes)  # DISPATCH_INTERVAL_SECONDS=1
    assert max(successes) - min(successes) >= timedelta(seconds=2)


def test_a_due_message_is_dispatched_by_the_scheduler_alone(stack):
    due_at = datetime.now(UTC) - timedelta(minutes=1)
    with stack.connect() as conn:
        user_id = conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES ('Grace', 'Hopper', 'grace@example.com', 'UTC', '1990-06-15') RETURNING id"
        ).fetchone()["id"]
        message_id = conn.execute(
            "INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,"
            " scheduled_send_time, next_attempt_at, idempotency_key)"
            " VALUES (%(u)s, 'BIRTHDAY', %(d)s, 'Hey, Grace Hopper it''s your birthday',"
            " %(t)s, %(t)s, message_idempotency_key(%(u)s, 'BIRTHDAY', %(d)s)) RETURNING id",
            {"u": user_id, "d": due_at.date(), "t": due_at},
        ).fetchone()["id"]

    stack.start(QUEUED_LEASE="10m")  # no re-publish by recovery during the test

    def status() -> str:
        with stack.connect() as conn:
            return conn.execute(
                "SELECT status FROM message_logs WHERE id = %s", (message_id,)
            ).fetchone()["status"]

    wait_until(lambda: status() == "QUEUED", 20, "the due row to become QUEUED")
    wait_until(lambda: stack.queue_depths().get("greetings") == 1, 10, "one message in 'greetings'")
    message = stack.peek("greetings")
    assert message is not None
    assert message["actor_name"] == "send_greeting"
    assert message["args"] == [message_id]


def test_sigterm_stops_the_scheduler_cleanly_and_releases_the_lock(stack):
    scheduler = stack.start()
    wait_until(lambda: finished(stack.heartbeat("dispatch")), 20, "the first dispatch")
    assert stack.lock_holders() == [stack.lock_app_name(scheduler)]

    scheduler.send_signal(signal.SIGTERM)

    assert scheduler.wait(timeout=10) == 0
    wait_until(lambda: stack.advisory_locks() == [], 3, "no advisory lock in the database")
    assert f"scheduler {stack.name(scheduler)} stopped" in stack.log_of(scheduler)


def test_a_failing_job_is_recorded_and_the_loop_goes_on(stack):
    with stack.connect() as conn:
        conn.execute("DROP FUNCTION drop_old_partitions(interval, date, boolean)")
    scheduler = stack.start()

    failed = wait_until(
        lambda: (row := stack.heartbeat("partitions")) and finished(row) and row,
        20,
        "the partitions job to finish",
    )

    assert failed["last_error"] is not None
    assert "drop_old_partitions" in failed["last_error"]
    assert failed["last_success_at"] is None
    wait_until(
        lambda: (
            stack.heartbeat("dispatch")["last_success_at"]
            > failed["last_started_at"] + timedelta(seconds=2)
        ),
        10,
        "dispatch to keep succeeding after the failure",
    )
    assert scheduler.poll() is None


def test_a_user_without_messages_is_planned_when_the_scheduler_starts(stack):
    today = datetime.now(UTC).date()
    occasion = today + timedelta(days=100)
    if (occasion.month, occasion.day) == (2, 29):
        occasion += timedelta(days=1)
    with stack.connect() as conn:
        user_id = conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES ('Alan', 'Turing', 'alan@example.com', 'UTC', %s) RETURNING id",
            (occasion.replace(year=1990),),
        ).fetchone()["id"]

    stack.start()

    def planned() -> list[dict]:
        with stack.connect() as conn:
            return conn.execute(
                "SELECT * FROM message_logs WHERE user_id = %s", (user_id,)
            ).fetchall()

    [row] = wait_until(planned, 20, "a planned row for the user")
    assert row["status"] == "SCHEDULED"
    assert row["message_type"] == "BIRTHDAY"
    assert row["occasion_date"] == occasion
    assert row["scheduled_send_time"] == datetime(
        occasion.year, occasion.month, occasion.day, 9, 0, tzinfo=UTC
    )


def test_a_scheduler_serves_its_leader_flag_job_times_and_expiries_as_metrics(stack):
    from prometheus_client.parser import text_string_to_metric_families

    old = datetime.now(UTC) - timedelta(days=4)
    with stack.connect() as conn:
        user_id = conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES ('Old', 'Greeting', 'old@example.com', 'UTC', '1990-06-15') RETURNING id"
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,"
            " scheduled_send_time, next_attempt_at, idempotency_key)"
            " VALUES (%(u)s, 'BIRTHDAY', %(d)s, 'Hey', %(t)s, %(t)s,"
            " message_idempotency_key(%(u)s, 'BIRTHDAY', %(d)s))",
            {"u": user_id, "d": old.date(), "t": old},
        )
    port = free_port()
    stack.start(SCHEDULER_METRICS_PORT=str(port))

    def scrape() -> dict:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.RequestException:
            return {}
        families = text_string_to_metric_families(text)
        return {s.name: s for f in families for s in f.samples if not s.labels or "job" in s.labels}

    metrics = wait_until(
        # The counter is served (at 0) before the first dispatch has run: wait for the run.
        lambda: (
            (m := scrape()).get("birthday_sends_expired_total")
            and m["birthday_sends_expired_total"].value >= 1
            and m
        ),
        20,
        "the expiry in the metrics",
    )
    assert metrics["birthday_scheduler_is_leader"].value == 1
    assert metrics["birthday_sends_expired_total"].value == 1
    assert metrics["birthday_scheduler_job_last_success_timestamp_seconds"].value > 1.7e9
