"""The provider-wide circuit breaker and rate limit, shared by every worker through Redis."""

from __future__ import annotations

import logging

import pybreaker
import redis
from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from config import Settings

log = logging.getLogger(__name__)

# Where the breaker keeps its state in Redis (the readiness check reads it too).
BREAKER_NAMESPACE = "birthday:provider-breaker"
RATE_LIMIT_KEY = "birthday:provider-sends"


def connect_redis(settings: Settings) -> redis.Redis:
    """A Redis client with short timeouts: an unreachable Redis fails fast."""
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state) -> None:
        log.warning(
            "provider circuit breaker %s -> %s",
            getattr(old_state, "name", old_state),
            new_state.name,
        )


def build_breaker(settings: Settings, client: redis.Redis) -> pybreaker.CircuitBreaker:
    """Opens after BREAKER_FAIL_MAX transient failures in a row, for every worker at once."""
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, client, namespace=BREAKER_NAMESPACE
    )
    return pybreaker.CircuitBreaker(
        fail_max=settings.breaker_fail_max,
        reset_timeout=settings.breaker_reset_timeout.total_seconds(),
        state_storage=storage,
        listeners=[_LogStateChanges()],
        name="email-provider",
        # The failure that trips the breaker is still recorded as a counted retry.
        throw_new_error_on_trip=False,
    )


def build_rate_limiter(settings: Settings, client: redis.Redis) -> WindowRateLimiter:
    """PROVIDER_RATE_LIMIT sends per second across all workers (a one-second window)."""
    backend = RedisBackend(client=client)
    return WindowRateLimiter(backend, RATE_LIMIT_KEY, limit=settings.provider_rate_limit, window=1)
