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
from dataclasses import dataclass

from dramatiq.middleware import Middleware
from psycopg_pool import ConnectionPool

from adapters.email_provider import ProviderClient
from adapters.provider_guards import ProviderGuard, build_provider_guard, connect_redis
from config import Settings
from db.pool import create_pool, watch_database

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
POOL_OPEN_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerResources:
    settings: Settings
    pool: ConnectionPool
    provider: ProviderClient
    guard: ProviderGuard  # the provider-wide breaker and rate limit

    @classmethod
    def build(cls, settings: Settings, threads: int) -> WorkerResources:
        """One pool of at most `threads` connections (a thread holds one at a time)."""
        pool = create_pool(
            settings,
            application_name="birthday-worker",
            min_size=min(settings.db_pool_min_size, threads),
            max_size=threads,
        )
        # Not waiting: with PostgreSQL down the worker still starts, and each send
        # waits up to DB_POOL_TIMEOUT for a connection (the message is retried).
        watch_database(pool, "worker")
        return cls(
            settings=settings,
            pool=pool,
            provider=ProviderClient(settings, threads),
            guard=build_provider_guard(settings, connect_redis(settings)),
        )

    def close(self) -> None:
        self.pool.close()


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
