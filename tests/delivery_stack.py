"""Real processes for end-to-end tests: a RabbitMQ vhost, the local provider, workers
(`dramatiq tasks`) and schedulers (`python -m tasks.scheduler`), each started the way
the Procfile starts them, with settings shortened so tests run in seconds.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import redis
import requests
from psycopg.rows import dict_row

from domain.occasions import occasion_in_year
from planning import for_users as planning
from repositories import users

ROOT = Path(__file__).resolve().parent.parent
REDIS_TEST_URL = "redis://127.0.0.1:6379/15"

FAST_SETTINGS = {
    "DISPATCH_INTERVAL_SECONDS": "1",
    "RECOVERY_INTERVAL_SECONDS": "1",
    "PLANNING_INTERVAL_SECONDS": "3600",
    "RETRY_BASE_DELAY": "1s",
    "RETRY_MAX_DELAY": "2s",
    "QUEUED_LEASE": "3s",
    # The lease must outlast the longest attempt: rate-limit wait + connect + read.
    "SENDING_LEASE": "8s",
    "PROVIDER_RATE_LIMIT_WAIT": "3s",
    "PROVIDER_CONNECT_TIMEOUT": "1",
    "PROVIDER_READ_TIMEOUT": "3",
    "BREAKER_FAIL_MAX": "3",
    "BREAKER_RESET_TIMEOUT": "3s",
    "PROVIDER_RATE_LIMIT": "1000",
    "DB_POOL_MIN_SIZE": "1",
    "LOG_LEVEL": "INFO",
    "SCHEDULER_METRICS_PORT": "0",
    # These tests stand at whatever hour the suite runs, in users' zones chosen for a
    # greeting due now; the window has tests of its own at chosen instants
    # (tests/db/delivery/test_delivery_window.py, tests/e2e/test_send_attempt.py).
    "DELIVERY_WINDOW": "off",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )


class Processes:
    """Starts service processes with one environment and stops them all at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        # The Procfile's commands (dramatiq, gunicorn) come from this interpreter's venv.
        venv_bin = str(Path(sys.executable).parent)
        self.env = {**env, "PATH": f"{venv_bin}:{env.get('PATH', '')}"}
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []
        self.log_paths: dict[int, Path] = {}

    def start(self, name: str, command: list[str], **extra_env: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}-{len(self.running)}.log", "w")  # noqa: SIM115
        # Each process its own Prometheus port and directory (used by dramatiq workers),
        # so parallel or earlier workers never collide or add up.
        own = {
            "dramatiq_prom_port": str(free_port()),
            "dramatiq_prom_db": str(self.log_dir / f"metrics-{len(self.running)}"),
        }
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, **own, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill it with its children
        )
        self.running.append(process)
        self.log_paths[process.pid] = Path(log.name)
        return process

    def log_of(self, process: subprocess.Popen) -> str:
        """What `process` has written so far."""
        return self.log_paths[process.pid].read_text()

    def supervised_worker(self, processes: int = 1, threads: int = 2) -> subprocess.Popen:
        """The worker exactly as the Procfile runs it: keep-running + start-worker."""
        command = [
            "deploy/keep-running",
            "deploy/start-worker",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ]
        return self.start("supervised-worker", command)

    def worker(self, processes: int = 1, threads: int = 2, **env: str) -> subprocess.Popen:
        """`dramatiq tasks` with this stack's environment (plus `env`)."""
        command = [
            sys.executable,
            "-m",
            "dramatiq",
            "tasks",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ]
        return self.start("worker", command, **env)

    def scheduler(self, **env: str) -> subprocess.Popen:
        """`python -m tasks.scheduler` with this stack's environment (plus `env`)."""
        return self.start("scheduler", [sys.executable, "-m", "tasks.scheduler"], **env)

    def api(self, port: int, **extra_env: str) -> subprocess.Popen:
        """The API exactly as the Procfile runs it, on `port`, metrics in the log dir."""
        command = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
        return self.start(
            "api",
            command,
            BIND=f"127.0.0.1:{port}",
            PROMETHEUS_MULTIPROC_DIR=str(self.log_dir / f"api-metrics-{len(self.running)}"),
            **extra_env,
        )

    def stop(self, process: subprocess.Popen) -> None:
        """SIGTERM the whole process group and wait: a clean shutdown."""
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    def kill_hard(self, process: subprocess.Popen) -> None:
        """SIGKILL the whole process group: a crash, no clean-up."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}" for path in self.log_dir.glob("*.log")
        )


class Provider:
    """The local email provider in its own gunicorn process; with `smtp`, its SMTP side
    too, on `smtp_port`. `channel` is the one the service's processes send through
    ("smtp" starts the SMTP side)."""

    def __init__(
        self,
        smtp: bool = False,
        channel: str = "http",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        log: Path | None = None,
    ) -> None:
        self.channel = channel
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.smtp_port = free_port() if smtp or channel == "smtp" else None
        factory = "provider.app:create_app()"
        if self.smtp_port is not None:
            factory = f"provider.app:create_app(smtp_port={self.smtp_port})"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "--threads",
            "16",
            "-b",
            f"127.0.0.1:{self.port}",
            factory,
        ]
        # With `webhook_url`, it reports deliveries (and POST /events) there, signed with
        # `webhook_secret` (None: its default).
        environ = {
            k: v for k, v in os.environ.items() if k not in ("WEBHOOK_URL", "WEBHOOK_SECRET")
        }
        hooks = {"WEBHOOK_URL": webhook_url, "WEBHOOK_SECRET": webhook_secret}
        environ.update({name: value for name, value in hooks.items() if value is not None})
        output = log.open("w") if log is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environ,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not None:
                output.close()
        try:
            wait_until(self._healthy, 20, "the local provider to start")
            if self.smtp_port is not None:
                wait_until(self._smtp_listening, 20, "the local provider's SMTP side to start")
        except AssertionError:
            self.stop()
            raise

    def _smtp_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1):
                return True
        except OSError:
            return False

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    def reset(self) -> None:
        requests.post(f"{self.url}/reset", timeout=5).raise_for_status()

    def control(self, **behaviour: object) -> None:
        requests.post(f"{self.url}/control", json=behaviour, timeout=5).raise_for_status()

    def deliveries(self) -> list[dict]:
        return requests.get(f"{self.url}/deliveries", timeout=5).json()

    def requests_seen(self) -> list[dict]:
        return requests.get(f"{self.url}/requests", timeout=5).json()

    def calls_per_key(self) -> Counter:
        """Every POST or SMTP transaction the provider received, counted by idempotency
        key (over SMTP: read from the Message-ID; a repeat of a key is counted even though
        the provider delivers it once)."""
        return Counter(r["idempotency_key"] for r in self.requests_seen())

    def accepted_per_key(self) -> Counter:
        """The sends the provider accepted (delivered, or answered as a duplicate), by
        key: more than one is a greeting the service handed over again after it had
        been accepted, which over SMTP reaches the mailbox twice."""
        accepted = ("sent", "duplicate")
        return Counter(
            r["idempotency_key"] for r in self.requests_seen() if r.get("outcome") in accepted
        )

    def channel_settings(self) -> dict[str, str]:
        """The settings that send the service's greetings here, through `channel`."""
        settings = {"EMAIL_SERVICE_URL": self.url, "DELIVERY_CHANNEL": self.channel}
        if self.smtp_port is not None:
            settings["SMTP_URL"] = f"smtp://127.0.0.1:{self.smtp_port}"
        return settings

    def code_for(self, http_status: int) -> int:
        """The code the channel records for an answer the tests ask for as an HTTP status
        (the provider's SMTP side answers 250, 451 for a transient failure, 554 else)."""
        if self.channel == "http":
            return http_status
        if http_status < 300:
            return 250
        return 451 if http_status >= 500 or http_status == 429 else 554

    def stop(self) -> None:
        """SIGTERM its process group and wait; SIGKILL if it will not go."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def calls_above(calls: Counter, bound: int) -> dict[str, int]:
    """The keys that reached the provider more than `bound` times, with their counts."""
    return {key: count for key, count in calls.items() if count > bound}


def environment(db_url: str, amqp_url: str, provider: Provider | str, **overrides: str) -> dict:
    """What every test process gets: the test's database, vhost, Redis db and provider
    (a running one, through its channel; or a URL no provider answers)."""
    if isinstance(provider, Provider):
        delivery = provider.channel_settings()
    else:
        delivery = {"EMAIL_SERVICE_URL": provider}
    return {
        **os.environ,
        **FAST_SETTINGS,
        "DATABASE_URL": db_url,
        "RABBITMQ_URL": amqp_url,
        "REDIS_URL": REDIS_TEST_URL,
        **delivery,
        **overrides,
    }


def messages_in_queue(vhost: str, queue: str = "greetings") -> int:
    """Messages RabbitMQ holds in `queue`, ready or delivered and not yet acknowledged."""
    listed = rabbitmqctl("list_queues", "--no-table-headers", "-p", vhost, "name", "messages")
    counts = dict(line.split() for line in listed.stdout.splitlines() if line.strip())
    return int(counts.get(queue, 0))


def reset_shared_state(vhost: str) -> None:
    """Empty what a test module's tests share: the work queue and the Redis test db."""
    rabbitmqctl("purge_queue", "-p", vhost, "greetings")
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()


NINE = clock_time(9, 0)
_numbers = itertools.count()
CANDIDATE_ZONES = [
    "UTC",
    "Europe/London",
    "Asia/Tokyo",
    "America/New_York",
    "Asia/Kolkata",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
    "Pacific/Honolulu",
]


def due_zone(now: datetime) -> str:
    """A zone where it is now between 10:00 and 21:59: a birthday today there is due."""
    for name in CANDIDATE_ZONES:
        if 10 <= now.astimezone(ZoneInfo(name)).hour <= 21:
            return name
    raise AssertionError("no candidate zone is between 10:00 and 22:00")


def birth_date_celebrated_on(day: date, born_about: int) -> date:
    """A birth date in `born_about` or up to three years before, whose birthday falls on
    `day` by the service's calendar rule: on a Feb 29 only someone born on a Feb 29 has
    a birthday (a Feb 28 birthday stays on Feb 28 in a leap year)."""
    for year in range(born_about, born_about - 4, -1):
        born = occasion_in_year(day, year)
        if occasion_in_year(born, day.year) == day:
            return born
    raise AssertionError(f"no birth date near {born_about} is celebrated on {day}")


def birthday_today(now: datetime, zone: str, born_about: int) -> date:
    """A birth date about `born_about` whose birthday is today in `zone` at `now`."""
    return birth_date_celebrated_on(now.astimezone(ZoneInfo(zone)).date(), born_about)


def insert_due_users(
    conn: psycopg.Connection, count: int, label: str = "Due", now: datetime | None = None
) -> list:
    """`count` users whose birthday is today where it is now past 09:00 (so their
    greeting is due once planned), in one statement; their ids. Emails are unique per
    call, so a test may add more users later."""
    now = now or datetime.now(UTC)
    zone = due_zone(now)
    birthday = birthday_today(now, zone, 1985)
    rows = conn.execute(
        "INSERT INTO users (first_name, last_name, email, timezone, birthday_date)"
        " SELECT %(label)s, 'User' || n, lower(%(label)s) || n || '.' || %(tag)s || '@example.com',"
        " %(zone)s, %(birthday)s FROM generate_series(1, %(count)s) AS n RETURNING id",
        {
            "label": label,
            "tag": uuid.uuid4().hex[:8],
            "zone": zone,
            "birthday": birthday,
            "count": count,
        },
    ).fetchall()
    return [row["id"] if isinstance(row, dict) else row[0] for row in rows]


class Stack:
    def __init__(self, db_url: str, vhost: str, processes: Processes, provider: Provider):
        self.db_url = db_url
        self.vhost = vhost
        self.processes = processes
        self.provider = provider

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, row_factory=dict_row, autocommit=True)

    def create_user(self, now: datetime | None = None, **overrides) -> dict:
        """A user committed and planned as the API would, due now unless told otherwise."""
        now = now or datetime.now(UTC)
        zone = overrides.pop("timezone", None) or due_zone(now)
        data = {
            "first_name": "Ada",
            "last_name": f"Lovelace{next(_numbers)}",
            "email": f"e2e{next(_numbers)}@example.com",
            "timezone": zone,
            "birthday_date": birthday_today(now, zone, 1990),
            **overrides,
        }
        with self.connect() as conn, conn.transaction():
            user = users.insert(conn, data)
            planning.plan_user(conn, user["id"], now, NINE)
        return user

    def rows(self, user_id=None) -> list[dict]:
        with self.connect() as conn:
            return conn.execute(
                "SELECT * FROM message_logs WHERE (%(u)s::uuid IS NULL OR user_id = %(u)s)"
                " ORDER BY occasion_date",
                {"u": user_id},
            ).fetchall()

    def status_counts(self) -> Counter:
        return Counter(row["status"] for row in self.rows())

    def keys_with_status(self, status: str) -> set[str]:
        """The idempotency keys of the greetings in `status`."""
        return {row["idempotency_key"] for row in self.rows() if row["status"] == status}

    def publish_greeting(self, row: dict, copies: int) -> None:
        """Publish `copies` messages for one greeting row, as the scheduler's dispatch and
        recovery publish it (a copy too many is what a redelivery or a recovery makes)."""
        script = (
            "import sys, datetime, tasks.send as send\n"
            "for _ in range(int(sys.argv[3])):\n"
            "    send.enqueue(int(sys.argv[1]), datetime.date.fromisoformat(sys.argv[2]))\n"
        )
        arguments = [str(row["id"]), row["occasion_date"].isoformat(), str(copies)]
        published = subprocess.run(
            [sys.executable, "-c", script, *arguments],
            cwd=ROOT,
            env=self.processes.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert published.returncode == 0, published.stderr
