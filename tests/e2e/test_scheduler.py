"""The scheduler as real processes (`python -m tasks.scheduler`) on the real PostgreSQL,
publishing to a RabbitMQ vhost of its own: leader election through the advisory lock,
heartbeats per job, the first round, the dispatch cadence, clean shutdown, a failing
job, and planning at start. No worker runs: nothing consumes what is published.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pika
import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from tasks.leader import LEADER_LOCK_KEY
from tests.delivery_stack import (
    FAST_SETTINGS,
    Processes,
    birth_date_celebrated_on,
    environment,
    free_port,
    rabbitmqctl,
    reset_shared_state,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)
DISPATCH_INTERVAL = timedelta(seconds=int(FAST_SETTINGS["DISPATCH_INTERVAL_SECONDS"]))
TAKEOVER_BOUND = 30  # seconds: the follower polls the lock every MAX_SLEEP_SECONDS (1 s)
JOBS = {"dispatch", "recover", "plan", "partitions", "cleanup_keys", "refresh_zones"}
HOSTNAME = socket.gethostname()
NINE = clock_time(9, 0)
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
                CREATE TABLE test_heartbeat_writes (
                    leader text NOT NULL, job text NOT NULL, started_at timestamptz
                );
                CREATE FUNCTION test_log_heartbeat_write() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO test_heartbeat_writes (leader, job, started_at)
                    VALUES (NEW.leader, NEW.job, NEW.last_started_at);
                    RETURN NEW;
                END
                $$;
                CREATE TRIGGER test_heartbeat_writes AFTER INSERT OR UPDATE
                    ON scheduler_heartbeats FOR EACH ROW
                    EXECUTE FUNCTION test_log_heartbeat_write();
                """
            )

    def job_starts(self, job: str) -> list[tuple[datetime, str]]:
        """Every recorded start of `job`, oldest first, with the leader that ran it."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT started_at, leader FROM test_heartbeat_writes"
                " WHERE job = %s ORDER BY started_at",
                (job,),
            ).fetchall()
        return [(row["started_at"], row["leader"]) for row in rows]

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


def test_killing_the_leader_makes_the_other_take_over(stack):
    stack.record_heartbeat_writes()
    first, second = stack.start(), stack.start()
    leader = elected(stack, first, second)
    follower = second if leader is first else first

    stack.processes.kill_hard(leader)

    # The follower asks for the lock about once a second and dispatches at once when
    # it gets it; the bound only has to be finite (slack for a busy machine).
    wait_until(
        lambda: stack.heartbeat("dispatch")["leader"] == stack.name(follower),
        TAKEOVER_BOUND,
        "the follower to write the dispatch heartbeat",
    )
    assert stack.lock_holders() == [stack.lock_app_name(follower)]
    # One handover: the leader's runs, then only the follower's, never interleaved.
    runners = [name for _, name in stack.job_starts("dispatch")]
    handover = runners.index(stack.name(follower))
    assert set(runners[:handover]) == {stack.name(leader)}
    assert set(runners[handover:]) == {stack.name(follower)}
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


def test_dispatch_runs_again_and_again_never_sooner_than_its_interval(stack):
    stack.record_heartbeat_writes()
    stack.start()

    # Count runs, not seconds: wait (generously) for four dispatch starts.
    starts = wait_until(
        lambda: len(found := stack.job_starts("dispatch")) >= 4 and found,
        4 * DISPATCH_INTERVAL.total_seconds() + 20,
        "four dispatch runs",
    )

    times = [started for started, _ in starts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= DISPATCH_INTERVAL - timedelta(milliseconds=100) for gap in gaps), gaps
    assert len({leader for _, leader in starts}) == 1


def test_a_due_message_is_dispatched_by_the_scheduler_alone(stack):
    due_at = datetime.now(UTC) - timedelta(minutes=1)
    message_id = _insert_greeting(stack, "grace", due_at)

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
    assert message["args"] == [message_id, due_at.date().isoformat()]  # id and its partition


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


def test_partition_maintenance_behind_a_long_reader_gives_up_and_is_retried_soon(stack):
    # PARTITIONS_AHEAD=14: one more month than the migration made, so the job must
    # ATTACH a partition, which waits for the reader's lock on message_logs_default.
    with psycopg.connect(stack.db_url) as reader:
        reader.execute("SELECT count(*) FROM message_logs")
        scheduler = stack.start(
            PARTITIONS_AHEAD="14",
            PARTITION_LOCK_TIMEOUT="1s",
            PARTITION_RETRY_INTERVAL_SECONDS="2",
        )
        deferred = wait_until(
            lambda: (row := stack.heartbeat("partitions")) and row["last_error"] and row,
            30,
            "the partitions job to give up",
        )
        # The rest of the scheduler carries on while the reader still holds its lock.
        wait_until(
            lambda: (
                stack.heartbeat("dispatch")["last_success_at"]
                > deferred["last_started_at"] + timedelta(seconds=1)
            ),
            20,
            "dispatch to go on while partition maintenance waits",
        )
        reader.rollback()

    retried = wait_until(
        lambda: (row := stack.heartbeat("partitions")) and row["last_success_at"] and row,
        30,
        "the retry after PARTITION_RETRY_INTERVAL_SECONDS",
    )

    assert deferred["last_error"].startswith("PartitionMaintenanceDeferred: gave up waiting")
    assert "trying again in 2 s" in deferred["last_error"]
    assert retried["last_error"] is None
    assert "PartitionMaintenanceDeferred" in stack.log_of(scheduler)  # logged, too
    with stack.connect() as conn:
        count = conn.execute(
            "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'message_logs'::regclass"
        ).fetchone()["n"]
    assert count == 15 + 1  # this month and 14 ahead, and DEFAULT
    assert scheduler.poll() is None


def test_a_user_without_messages_is_planned_when_the_scheduler_starts(stack):
    today = datetime.now(UTC).date()
    occasion = today + timedelta(days=100)
    with stack.connect() as conn:
        user_id = conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES ('Alan', 'Turing', 'alan@example.com', 'UTC', %s) RETURNING id",
            (birth_date_celebrated_on(occasion, 1990),),
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


def test_at_start_a_zone_computed_unlike_zoneinfo_is_named_and_its_greeting_re_timed(stack):
    # Given a Paris user while the database computes Paris by Tokyo's rules (the
    # scheduler's first round plans them so, before its daily refresh corrects it)
    occasion = datetime.now(UTC).date() + timedelta(days=100)
    with stack.connect() as conn:
        conn.execute("UPDATE time_zones SET compute_as = 'Asia/Tokyo' WHERE name = 'Europe/Paris'")
        user_id = conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES ('Marie', 'Curie', 'marie@example.com', 'Europe/Paris', %s) RETURNING id",
            (birth_date_celebrated_on(occasion, 1990),),
        ).fetchone()["id"]

    # When a scheduler starts
    scheduler = stack.start()

    # Then it warns, naming the zone, and its daily refresh moves the greeting to 09:00 Paris
    wait_until(lambda: "Europe/Paris" in stack.log_of(scheduler), 20, "a warning naming the zone")
    wait_until(lambda: finished(stack.heartbeat("refresh_zones")), 20, "the refresh_zones job")
    with stack.connect() as conn:
        [row] = conn.execute(
            "SELECT status, scheduled_send_time FROM message_logs WHERE user_id = %s", (user_id,)
        ).fetchall()
        compute_as = conn.execute(
            "SELECT compute_as FROM time_zones WHERE name = 'Europe/Paris'"
        ).fetchone()["compute_as"]
    paris_nine = datetime.combine(occasion, NINE, tzinfo=ZoneInfo("Europe/Paris"))
    assert "WARNING" in stack.log_of(scheduler)
    assert stack.heartbeat("refresh_zones")["last_error"] is None
    assert compute_as == "Europe/Paris"
    assert row == {"status": "SCHEDULED", "scheduled_send_time": paris_nine}


def test_a_scheduler_serves_its_leader_flag_job_times_and_expiries_as_metrics(stack):
    from prometheus_client.parser import text_string_to_metric_families

    _insert_greeting(stack, "old", datetime.now(UTC) - timedelta(days=4))
    port = free_port()
    stack.start(SCHEDULER_METRICS_PORT=str(port))

    def scrape() -> dict:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.RequestException:
            return {}
        families = text_string_to_metric_families(text)
        return {s.name: s for f in families for s in f.samples if not s.labels or "job" in s.labels}

    def expired_once_and_job_done() -> dict | None:
        # The job counts its expiry while it runs and stamps its success when it ends: a
        # scrape in between sees the first without the second.
        found = scrape()
        counter = found.get("birthday_sends_expired_total")
        expired = counter is not None and counter.value >= 1
        done = "birthday_scheduler_job_last_success_timestamp_seconds" in found
        return found if expired and done else None

    metrics = wait_until(
        expired_once_and_job_done, 20, "the expiry and a job's success in the metrics"
    )
    assert metrics["birthday_scheduler_is_leader"].value == 1
    assert metrics["birthday_sends_expired_total"].value == 1
    assert metrics["birthday_scheduler_job_last_success_timestamp_seconds"].value > 1.7e9


def _insert_greeting(
    stack: SchedulerStack, name: str, due_at: datetime, status: str = "SCHEDULED"
) -> int:
    """A user and a greeting of theirs in `status`, due at `due_at`; the greeting's id.

    RETRYING stays where it is at the scheduler's first planning, as a SCHEDULED row
    off SEND_TIME would not (it is retimed).
    """
    with stack.connect() as conn:
        user_id = conn.execute(
            "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
            " VALUES (%(n)s, 'Due', %(n)s || '@example.com', 'UTC', '1990-06-15') RETURNING id",
            {"n": name},
        ).fetchone()["id"]
        return conn.execute(
            "INSERT INTO message_logs (user_id, message_type, occasion_date, message_content,"
            " scheduled_send_time, next_attempt_at, status, retry_count, idempotency_key)"
            " VALUES (%(u)s, 'BIRTHDAY', %(d)s, 'Hey', %(t)s, %(t)s, %(status)s, %(retries)s,"
            " message_idempotency_key(%(u)s, 'BIRTHDAY', %(d)s)) RETURNING id",
            {
                "u": user_id,
                "d": due_at.astimezone(UTC).date(),
                "t": due_at,
                "status": status,
                "retries": 1 if status == "RETRYING" else 0,
            },
        ).fetchone()["id"]


def _database_now(stack: SchedulerStack) -> datetime:
    with stack.connect() as conn:
        return conn.execute("SELECT now()").fetchone()["now"]


def _queued_late_by(stack: SchedulerStack, message_id: int) -> timedelta | None:
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT queued_at - next_attempt_at AS late FROM message_logs"
            " WHERE id = %s AND status = 'QUEUED'",
            (message_id,),
        ).fetchone()
    return row["late"] if row else None


def test_greetings_falling_due_between_two_dispatches_are_queued_at_their_instant(stack):
    # Given a dispatch interval far longer than the test, and a greeting that falls due
    # 6 s after the scheduler starts (known to it from its first look)
    known = _insert_greeting(
        stack, "known", _database_now(stack) + timedelta(seconds=6), "RETRYING"
    )
    stack.start(DISPATCH_INTERVAL_SECONDS="600", QUEUED_LEASE="10m")
    wait_until(lambda: finished(stack.heartbeat("dispatch")), 20, "the first dispatch")

    # When another is written, after that first look, to fall due in 3 s (a NOTIFY)
    written = _insert_greeting(
        stack, "written", _database_now(stack) + timedelta(seconds=3), "RETRYING"
    )

    # Then each is queued at its instant (give or take a loaded machine), not 600 s on
    lateness = {}
    for name, message_id in (("written", written), ("known", known)):
        lateness[name] = wait_until(
            lambda m=message_id: _queued_late_by(stack, m), 30, f"the {name} greeting QUEUED"
        )
    assert all(timedelta(0) <= late < timedelta(seconds=3) for late in lateness.values()), lateness


def test_a_greeting_written_due_later_than_the_hour_does_not_wake_the_scheduler(stack):
    # Given a scheduler that has made its first round, with a long dispatch interval
    stack.record_heartbeat_writes()
    stack.start(DISPATCH_INTERVAL_SECONDS="600")
    wait_until(lambda: finished(stack.heartbeat("dispatch")), 20, "the first dispatch")
    runs_before = len(stack.job_starts("dispatch"))

    # When a greeting due in two hours is written
    _insert_greeting(stack, "later", datetime.now(UTC) + timedelta(hours=2), "RETRYING")
    time.sleep(3)

    # Then no dispatch ran for it: the next regular one finds it in time
    assert len(stack.job_starts("dispatch")) == runs_before


def test_recovery_publishes_a_stale_queued_greeting_again_only_once_the_queue_lost_it(stack):
    # Given a due greeting, no worker to take it, 3 s leases and recovery every second
    _insert_greeting(stack, "waiting", _database_now(stack) - timedelta(seconds=1), "RETRYING")
    stack.start()
    wait_until(lambda: stack.queue_depths().get("greetings") == 1, 20, "one message queued")

    # When its lease runs out several times while its message still waits in the queue
    time.sleep(8)

    # Then it was not published again
    assert stack.queue_depths().get("greetings") == 1

    # And when the queue loses that message, the next recovery publishes it once more
    assert rabbitmqctl("purge_queue", "-p", stack.vhost, "greetings").returncode == 0
    wait_until(lambda: stack.queue_depths().get("greetings") == 1, 20, "the message again")
