"""The provider-wide circuit breaker and rate limit, shared by every worker through Redis.

One Lua script asks both questions before a send ("is the breaker letting calls
through, and is there room in this second's rate limit?") and a second one records a
transient failure or the success that closes the breaker again: one Redis round trip
on the common path, two when the breaker has something to count. Both read Redis's
own clock, so every worker host agrees on the second and on when the breaker opened.

The states and their rules are those of the classic breaker: CLOSED lets calls
through and counts consecutive transient failures; BREAKER_FAIL_MAX of them open it;
OPEN refuses every call for BREAKER_RESET_TIMEOUT; then HALF-OPEN lets one trial
call through (one for every worker at once, held by a key that expires if its
worker dies), whose success closes the breaker and whose failure opens it again.
The provider call itself is never made under a lock, so a worker's threads send
concurrently. (pybreaker, used before, holds a process-wide lock around the guarded
call, which made each worker send one greeting at a time.)
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

import redis

from config import Settings

log = logging.getLogger(__name__)

# Where the breaker keeps its state in Redis (the readiness check reads it too).
BREAKER_NAMESPACE = "birthday:provider-breaker"
BREAKER_STATE_KEY = f"{BREAKER_NAMESPACE}:state"
RATE_LIMIT_KEY = "birthday:provider-sends"
# A trial call's claim outlives the call's own timeouts by this much.
TRIAL_MARGIN = timedelta(seconds=5)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

# KEYS: state, opened_at, trial, failures, rate-limit prefix
# ARGV: sends per second, reset timeout (s), trial claim (ms)
# Returns {verdict, state, failures}: verdict "admitted", "open" or "rate-limited".
_ADMIT = """
local time = redis.call('TIME')
local second = tonumber(time[1])
local now = second + tonumber(time[2]) / 1000000
local state = redis.call('GET', KEYS[1]) or 'closed'
if state ~= 'closed' then
    local opened_at = tonumber(redis.call('GET', KEYS[2]) or '0')
    if state == 'open' and now < opened_at + tonumber(ARGV[2]) then
        return {'open', state, 0}
    end
    if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
        return {'open', state, 0}
    end
    redis.call('SET', KEYS[1], 'half-open')
    state = 'half-open'
end
local bucket = KEYS[5] .. ':' .. second
if tonumber(redis.call('GET', bucket) or '0') >= tonumber(ARGV[1]) then
    if state == 'half-open' then redis.call('DEL', KEYS[3]) end
    return {'rate-limited', state, 0}
end
redis.call('INCR', bucket)
redis.call('EXPIRE', bucket, 2)
return {'admitted', state, tonumber(redis.call('GET', KEYS[4]) or '0')}
"""

# KEYS: state, opened_at, trial, failures; ARGV: "failure" or "success", fail max
# Returns {state before, state after}. An answer that arrives while the breaker is open
# (its call was admitted before it opened) changes nothing.
_RECORD = """
local before = redis.call('GET', KEYS[1]) or 'closed'
if before == 'open' then
    return {before, before}
end
if ARGV[1] == 'success' then
    redis.call('SET', KEYS[4], 0)
    redis.call('DEL', KEYS[3])
    redis.call('SET', KEYS[1], 'closed')
    return {before, 'closed'}
end
local time = redis.call('TIME')
local failures = redis.call('INCR', KEYS[4])
if before == 'half-open' or failures >= tonumber(ARGV[2]) then
    redis.call('SET', KEYS[2], tonumber(time[1]) + tonumber(time[2]) / 1000000)
    redis.call('SET', KEYS[4], 0)
    redis.call('DEL', KEYS[3])
    redis.call('SET', KEYS[1], 'open')
    return {before, 'open'}
end
return {before, before}
"""


class AdmissionVerdict(enum.Enum):
    ADMITTED = "admitted"
    OPEN = "open"  # the breaker refuses the call
    RATE_LIMITED = "rate-limited"  # no room left in this second


@dataclass(frozen=True)
class Admission:
    verdict: AdmissionVerdict
    state: str  # the breaker's state the call was admitted in
    failures: int  # consecutive transient failures counted so far


class ProviderGuard:
    """Breaker and rate limit for provider calls, kept in Redis for every worker."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        sends_per_second: int,
        fail_max: int,
        reset_timeout: timedelta,
        trial_timeout: timedelta,
        namespace: str = BREAKER_NAMESPACE,
        rate_key: str = RATE_LIMIT_KEY,
    ) -> None:
        self.sends_per_second = sends_per_second
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.trial_timeout = trial_timeout
        self._admit = client.register_script(_ADMIT)
        self._record = client.register_script(_RECORD)
        self.state_key = f"{namespace}:state"
        self._keys = [
            self.state_key,
            *(f"{namespace}:{k}" for k in ("opened_at", "trial", "failures")),
        ]
        self._rate_key = rate_key

    def admit(self) -> Admission:
        """May one call go to the provider now? Raises redis.RedisError if Redis is away."""
        args = [
            self.sends_per_second,
            self.reset_timeout.total_seconds(),
            int(self.trial_timeout.total_seconds() * 1000),
        ]
        verdict, state, failures = self._admit(keys=[*self._keys, self._rate_key], args=args)
        return Admission(AdmissionVerdict(verdict.decode()), state.decode(), int(failures))

    def record(self, admission: Admission, transient_failure: bool) -> None:
        """Count the answer of an admitted call (a success in a quiet breaker costs nothing)."""
        if not transient_failure and admission.state == CLOSED and admission.failures == 0:
            return
        outcome = "failure" if transient_failure else "success"
        before, after = self._record(keys=self._keys, args=[outcome, self.fail_max])
        if before != after:
            log.warning("provider circuit breaker %s -> %s", before.decode(), after.decode())


def breaker_state(client: redis.Redis) -> str:
    """closed, open or half-open, as the workers share it (closed until first opened)."""
    raw = client.get(BREAKER_STATE_KEY)
    return raw.decode() if raw else CLOSED


def connect_redis(settings: Settings) -> redis.Redis:
    """A Redis client with short timeouts: an unreachable Redis fails fast."""
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def build_provider_guard(settings: Settings, client: redis.Redis) -> ProviderGuard:
    """PROVIDER_RATE_LIMIT sends per second; BREAKER_FAIL_MAX transient failures in a
    row open the breaker for BREAKER_RESET_TIMEOUT."""
    return ProviderGuard(
        client,
        sends_per_second=settings.provider_rate_limit,
        fail_max=settings.breaker_fail_max,
        reset_timeout=settings.breaker_reset_timeout,
        trial_timeout=settings.provider_call_timeout + TRIAL_MARGIN,
    )
