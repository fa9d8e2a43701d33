"""The worker's composition root: what one worker process needs, built once.

Dramatiq calls `BuildWorkerResources.before_worker_boot` in each worker process
after the fork and before its threads start, so the pool is sized for the
process's `--threads` and exactly one is built. Actors reach it with `current()`;
outside a worker (an actor called in-process) `current()` builds it on first use,
under a lock, so concurrent threads still share one pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from dramatiq.middleware import Middleware
from psycopg_pool import ConnectionPool

from channels import build_channel
from channels.guards import ProviderGuard, build_provider_guard, connect_redis
from channels.port import Channel
from config import Settings
from db.availability import watch_database
from db.pool import create_pool
from delivery import attempts as delivery
from tasks.batching import Batcher

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
POOL_OPEN_TIMEOUT_SECONDS = 10.0

Take = tuple[int, date | None]  # message id, occasion date (None: an older message)
Sent = delivery.Sent


@dataclass(frozen=True)
class WorkerResources:
    settings: Settings
    pool: ConnectionPool
    channel: Channel  # the DELIVERY_CHANNEL greetings go out through
    guard: ProviderGuard  # the provider-wide breaker and rate limit
    takes: Batcher[Take, dict | None]  # the threads' takes, one statement per batch
    sends: Batcher[Sent, bool]  # the threads' sent greetings, one commit per batch

    @classmethod
    def build(cls, settings: Settings, threads: int) -> WorkerResources:
        """One pool of at most `threads` connections (a thread holds one at a time), and
        the DELIVERY_CHANNEL (a name no channel has stops the worker here)."""
        channel = build_channel(settings, threads)
        pool = create_pool(
            settings,
            application_name="birthday-worker",
            min_size=min(settings.db_pool_min_size, threads),
            max_size=threads,
            generic_plans=True,
        )
        # Not waiting: with PostgreSQL down the worker still starts, and each send
        # waits up to DB_POOL_TIMEOUT for a connection (the message is retried).
        watch_database(pool, "worker")
        linger = settings.worker_batch_linger.total_seconds()
        return cls(
            settings=settings,
            pool=pool,
            channel=channel,
            guard=build_provider_guard(settings, connect_redis(settings)),
            takes=Batcher("take", _taking(pool, settings), threads, linger),
            sends=Batcher("record-sent", _recording(pool, settings), threads, linger),
        )

    def batch_timeout(self) -> float:
        """How long a thread waits for its batch: the linger, a connection, then the
        statements."""
        statements = 2 * self.settings.db_statement_timeout_ms / 1000
        linger = self.settings.worker_batch_linger.total_seconds()
        return linger + self.settings.db_pool_timeout + statements

    def close(self) -> None:
        self.pool.close()
        self.channel.close()


def _taking(pool: ConnectionPool, settings: Settings) -> Callable[[Sequence[Take]], list]:
    def take(targets: Sequence[Take]) -> list[dict | None]:
        return delivery.begin_sends(
            pool,
            targets,
            None,
            lease=settings.sending_lease,
            max_lateness=settings.max_lateness,
            send_time=settings.send_time,
            window=settings.delivery_hours,
        )

    return take


def _recording(pool: ConnectionPool, settings: Settings) -> Callable[[Sequence[Sent]], list]:
    def record(sends: Sequence[Sent]) -> list[bool]:
        return delivery.record_sends(pool, sends, settings.send_time)

    return record


_lock = threading.Lock()
_current: WorkerResources | None = None


def install(resources: WorkerResources) -> None:
    """Make `resources` the process's own (closing any earlier ones)."""
    global _current
    with _lock:
        previous, _current = _current, resources
    if previous is not None:
        previous.close()


def current() -> WorkerResources:
    """This process's resources, built on first use if no worker boot built them."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = WorkerResources.build(Settings.from_env(), DEFAULT_THREADS)
    return _current


class BuildWorkerResources(Middleware):
    """Builds the worker process's resources at boot, closes them at shutdown."""

    def before_worker_boot(self, broker, worker) -> None:
        install(WorkerResources.build(Settings.from_env(), worker.worker_threads))
        log.info("worker resources built for %d thread(s)", worker.worker_threads)

    def after_worker_shutdown(self, broker, worker) -> None:
        global _current
        with _lock:
            resources, _current = _current, None
        if resources is not None:
            resources.close()
