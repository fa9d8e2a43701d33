"""The scheduler process: `python -m tasks.scheduler`.

A `schedule` loop whose jobs only run while this process holds the leader lock,
so any number of schedulers may be started and exactly one acts. Jobs: dispatch
due greetings (every DISPATCH_INTERVAL_SECONDS, and between two runs at the instant
the earliest waiting greeting falls due: after each dispatch the loop notes that
instant and sleeps until it, and a write that makes one due sooner wakes it through
LISTEN/NOTIFY, see tasks/due_watch.py), recover stale ones, plan everyone (at start
and hourly), partition maintenance, Idempotency-Key cleanup and the time-zone refresh
(daily). At start it logs a warning naming any zone users have where PostgreSQL and
zoneinfo disagree.
Each job's start and end are written to scheduler_heartbeats; a job that raises is
logged and the loop goes on. Partition maintenance that gives up waiting for a lock
(PARTITION_LOCK_TIMEOUT) is tried again after PARTITION_RETRY_INTERVAL_SECONDS instead
of the next day. SIGTERM or SIGINT stops the loop after the current job.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import schedule
from psycopg_pool import ConnectionPool

from adapters import broker_probe
from config import Settings
from db.pool import connect, create_pool, database_label
from db.transactions import transaction
from delivery import dispatch
from log_setup import configure_logging
from operations import metrics as service_metrics
from operations import partitions as partition_upkeep
from operations import time_zones
from planning import all_users as planning
from repositories import heartbeats, message_lifecycle, server
from tasks.due_watch import DueWatch
from tasks.leader import LeaderLock
from users import idempotent_requests as idempotency

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 1.0
# Publishes in flight at once when a batch of greetings is handed to RabbitMQ.
PUBLISH_THREADS = 4
# Between two dispatches that a due greeting brings forward, at least this long (a row
# another transaction holds locked stays due until it is released).
MIN_DISPATCH_GAP_SECONDS = 0.1


class Scheduler:
    """One scheduler process: the loop, its jobs, and what they are given to work with.

    `Scheduler.build` is the process's composition root: it makes the pool, the
    leader lock, the LISTEN connection and the queue probe; `__init__` only takes them.
    """

    def __init__(
        self,
        settings: Settings,
        enqueue: dispatch.Enqueue,
        *,
        name: str,
        pool: ConnectionPool,
        leader: LeaderLock,
        due_watch: DueWatch,
        messages_in_queue: dispatch.QueueCount,
    ) -> None:
        self.settings = settings
        self.enqueue = enqueue
        self.name = name
        self.pool = pool
        self.leader = leader
        self.due_watch = due_watch
        self.messages_in_queue = messages_in_queue
        self.metrics = service_metrics.scheduler()
        # Threads that publish a claimed batch at once (each keeps a RabbitMQ channel).
        self.publishers = ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix="publish")
        self.jobs = schedule.Scheduler()
        self.partition_retry: schedule.Job | None = None
        # When (time.monotonic()) the earliest waiting greeting falls due, if sooner
        # than the next regular dispatch; None: nothing due before it.
        self.next_due_at: float | None = None
        self.stopping = False

    @classmethod
    def build(cls, settings: Settings, enqueue: dispatch.Enqueue) -> Scheduler:
        """A scheduler named host:pid, with a pool, leader lock and LISTEN of its own;
        none of them connects before `run_forever`."""
        name = f"{socket.gethostname()}:{os.getpid()}"
        return cls(
            settings,
            enqueue,
            name=name,
            pool=create_pool(settings, application_name="birthday-scheduler"),
            leader=LeaderLock(settings, name),
            due_watch=DueWatch(settings),
            messages_in_queue=lambda: broker_probe.messages_waiting(settings),
        )

    def register_jobs(self) -> None:
        every = self.settings
        self.jobs.every(every.dispatch_interval_seconds).seconds.do(
            self._run, "dispatch", self.dispatch
        )
        self.jobs.every(every.recovery_interval_seconds).seconds.do(
            self._run, "recover", self.recover
        )
        self.jobs.every(every.planning_interval_seconds).seconds.do(self._run, "plan", self.plan)
        self.jobs.every().day.do(self._run, "partitions", self.maintain_partitions)
        self.jobs.every().day.do(self._run, "cleanup_keys", self.clean_up_keys)
        self.jobs.every().day.do(self._run, "refresh_zones", self.refresh_zones)

    def _publisher(self, job: str) -> dispatch.Enqueue:
        """`enqueue`, counted under `job`."""

        def publish(message_id: int, occasion_date: date) -> None:
            self.enqueue(message_id, occasion_date)
            self.metrics.published.labels(job).inc()

        return publish

    def dispatch(self, now: datetime) -> None:
        result = dispatch.dispatch_due(
            self.pool, self._publisher("dispatch"), now, self.settings, self.publishers
        )
        self.metrics.expired.inc(result.expired)
        self.look_for_next_due()

    def look_for_next_due(self) -> None:
        """Note when the earliest waiting greeting falls due, to dispatch it then."""
        with transaction(self.pool) as conn:
            seconds = message_lifecycle.seconds_until_next_due(conn)
        if seconds is None or seconds > self.settings.dispatch_interval_seconds:
            self.next_due_at = None  # the regular dispatch comes first
            return
        self.next_due_at = time.monotonic() + max(seconds, MIN_DISPATCH_GAP_SECONDS)

    def _dispatch_if_due(self) -> None:
        if self.next_due_at is not None and time.monotonic() >= self.next_due_at:
            self.next_due_at = None
            self._run("dispatch", self.dispatch)

    def _pause(self) -> float:
        """How long to wait: until the next job, or the next due greeting, at most 1 s."""
        idle = self.jobs.idle_seconds
        pause = min(MAX_SLEEP_SECONDS, max(0.05, idle if idle is not None else 1.0))
        if self.next_due_at is not None:
            pause = min(pause, max(0.0, self.next_due_at - time.monotonic()))
        return pause

    def _wait(self) -> None:
        """Wait for the next thing to do; a NOTIFY that something fell due cuts it short."""
        if not self.due_watch.wait(self._pause()):
            return
        try:
            self.look_for_next_due()
        except Exception:  # the regular dispatch still comes; the loop must go on
            log.exception("could not look for the next due greeting")

    def recover(self, now: datetime) -> None:
        publish = self._publisher("recover")
        dispatch.recover_stale(
            self.pool, publish, now, self.settings, self.messages_in_queue, self.publishers
        )

    def plan(self, now: datetime) -> None:
        planning.plan_all(self.pool, now, self.settings.send_time)

    def maintain_partitions(self, now: datetime) -> None:
        """operations.partitions.maintain; deferred behind a lock, it is tried again in
        PARTITION_RETRY_INTERVAL_SECONDS."""
        settings = self.settings
        try:
            with self.pool.connection() as conn:
                partition_upkeep.maintain(
                    conn,
                    ahead=settings.partitions_ahead,
                    retain_months=settings.message_retention_months,
                    today=now.date(),
                    lock_timeout=settings.partition_lock_timeout,
                )
        except partition_upkeep.PartitionMaintenanceDeferred as deferred:
            self._retry_partitions_later()
            raise partition_upkeep.PartitionMaintenanceDeferred(
                f"{deferred}; trying again in {settings.partition_retry_interval_seconds} s"
            ) from deferred

    def _retry_partitions_later(self) -> None:
        """One pending retry at most: a one-off job that removes itself when it runs."""
        if self.partition_retry is not None:
            return
        self.partition_retry = self.jobs.every(
            self.settings.partition_retry_interval_seconds
        ).seconds.do(self._run, "partitions", self._retry_partitions)

    def _retry_partitions(self, now: datetime) -> None:
        if self.partition_retry is not None:
            self.jobs.cancel_job(self.partition_retry)
            self.partition_retry = None
        self.maintain_partitions(now)

    def clean_up_keys(self, now: datetime) -> None:
        idempotency.clean_up_expired(self.pool, now, self.settings.idempotency_key_retention)

    def refresh_zones(self, now: datetime) -> None:
        # A connection of its own: pooled backends keep the zone files they have read.
        with connect(self.settings, "birthday-scheduler-zones", autocommit=True) as conn:
            time_zones.refresh_zones(conn, self.settings.send_time)

    def check_zone_agreement(self) -> None:
        """Warn about zones where the database and this host compute different instants."""
        time_zones.check_agreement(self.pool, datetime.now(UTC), self.settings.send_time)

    def _run(self, name: str, job: Callable[[datetime], None]) -> None:
        """Run one job if this process leads; record it; never let it kill the loop."""
        if self.stopping or not self.leader.refresh():
            return
        try:
            with transaction(self.pool) as conn:
                # The database's clock: workers take their leases by it too.
                now = server.database_now(conn)
                heartbeats.record_start(conn, name, self.name, now)
            job(now)
        except Exception as error:  # a failing job is reported, the loop carries on
            log.exception("scheduler job %s failed", name)
            self.metrics.job_failures.labels(name).inc()
            self._record_end(name, f"{type(error).__name__}: {error}")
            return
        self.metrics.job_success.labels(name).set_to_current_time()
        self._record_end(name, None)

    def _record_end(self, name: str, error: str | None) -> None:
        try:
            with transaction(self.pool) as conn:
                heartbeats.record_end(conn, name, error)
        except Exception:
            log.exception("could not record the end of job %s", name)

    def run_forever(self) -> None:
        """Loop until SIGTERM/SIGINT; the first round runs every job (planning at start)."""
        # Opened without waiting: with PostgreSQL down the scheduler starts anyway, and
        # the leader lock (which needs the database) keeps it idle until it returns.
        self.pool.open()
        self.serve_metrics()
        self.register_jobs()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("scheduler %s started on database %s", self.name, database_label(self.pool))
        first_round = True
        while not self.stopping:
            leading = self.leader.refresh()
            self.metrics.is_leader.set(1 if leading else 0)
            if not leading:
                self.next_due_at = None
                time.sleep(MAX_SLEEP_SECONDS)  # a follower only asks for the lock now and then
                continue
            if first_round:
                self.check_zone_agreement()  # once the database answers (it leads)
                self.jobs.run_all()
                first_round = False
            else:
                self.jobs.run_pending()
                self._dispatch_if_due()
            self._wait()
        self.publishers.shutdown(wait=True)
        self.due_watch.close()
        self.leader.close()
        self.pool.close()
        log.info("scheduler %s stopped", self.name)

    def serve_metrics(self) -> None:
        """Expose this process's metrics; a taken port is logged, not fatal."""
        port = self.settings.scheduler_metrics_port
        if not port:
            return
        try:
            service_metrics.serve(port)
        except OSError as error:
            log.warning("scheduler metrics not served on port %d: %s", port, error)

    def _stop(self, signum: int, frame: object) -> None:
        log.info("scheduler %s stopping (signal %d)", self.name, signum)
        self.stopping = True


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    from tasks.send import enqueue  # the broker module comes first (tasks/__init__)

    Scheduler.build(settings, enqueue).run_forever()


if __name__ == "__main__":
    main()
