"""Per-process resources of the worker, built on first use (after the fork)."""

from __future__ import annotations

import atexit
import functools
import logging

import pybreaker
import redis
from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend
from psycopg_pool import ConnectionPool

from config import Settings
from db.pool import create_pool, watch_database
from services.health import BREAKER_NAMESPACE
from tasks.provider import ProviderClient

log = logging.getLogger(__name__)


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def pool() -> ConnectionPool:
    opened = create_pool(settings(), application_name="birthday-worker")
    watch_database(opened, "worker")  # opens without waiting: PostgreSQL may be down
    atexit.register(opened.close)
    return opened


@functools.cache
def provider() -> ProviderClient:
    return ProviderClient(settings())


@functools.cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings().redis_url, socket_timeout=2, socket_connect_timeout=2)


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state) -> None:
        log.warning(
            "provider circuit breaker %s -> %s",
            getattr(old_state, "name", old_state),
            new_state.name,
        )


@functools.cache
def breaker() -> pybreaker.CircuitBreaker:
    """Shared by every worker process through Redis, so all of them stop together."""
    current = settings()
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis_client(), namespace=BREAKER_NAMESPACE
    )
    return pybreaker.CircuitBreaker(
        fail_max=current.breaker_fail_max,
        reset_timeout=current.breaker_reset_timeout.total_seconds(),
        state_storage=storage,
        listeners=[_LogStateChanges()],
        name="email-provider",
        # The failure that trips the breaker is still recorded as a counted retry.
        throw_new_error_on_trip=False,
    )


@functools.cache
def rate_limiter() -> WindowRateLimiter:
    """PROVIDER_RATE_LIMIT sends per second across all workers (a one-second window)."""
    backend = RedisBackend(client=redis_client())
    return WindowRateLimiter(
        backend, "birthday:provider-sends", limit=settings().provider_rate_limit, window=1
    )
