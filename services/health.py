"""Readiness checks of the dependencies other than PostgreSQL, each bounded in time.

/health runs them in parallel with the database check, so it answers within 3 s
even when every dependency hangs.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
import redis
from psycopg_pool import ConnectionPool

from adapters.provider_guards import BREAKER_STATE_KEY
from config import Settings
from db.pool import connection_unless_unreachable
from repositories import heartbeats

CHECK_TIMEOUT = 2.0


def _timed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class BrokerUnreachable(Exception):
    """No address of RABBITMQ_URL answered; the message says why for each."""


def _broker_parameters(address: str, timeout: float) -> pika.URLParameters:
    parameters = pika.URLParameters(address)
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    parameters.connection_attempts = 1
    return parameters


def _open_broker_connection(settings: Settings) -> pika.BlockingConnection:
    """A connection to the first RABBITMQ_URL address that answers, all within CHECK_TIMEOUT.

    Each address gets an even share of what is left, so one node that hangs cannot
    use up the time another node needs to answer.
    """
    addresses = settings.rabbitmq_urls
    deadline = time.monotonic() + CHECK_TIMEOUT
    failures = []
    for index, address in enumerate(addresses):
        share = max(0.2, (deadline - time.monotonic()) / (len(addresses) - index))
        try:
            return pika.BlockingConnection(_broker_parameters(address, share))
        except Exception as error:  # pika raises many unrelated types for "unreachable"
            failures.append(f"{_broker_label(address)}: {type(error).__name__}: {error}")
    raise BrokerUnreachable("; ".join(failures))


def _broker_label(address: str) -> str:
    """host:port of one address, never its credentials."""
    parts = urlsplit(address)
    return f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


def check_rabbitmq(settings: Settings) -> dict[str, Any]:
    """Open and close an AMQP connection: ready when any RABBITMQ_URL address answers."""
    started = time.perf_counter()
    try:
        connection = _open_broker_connection(settings)
        connection.close()
    except BrokerUnreachable as error:
        return {"status": "unavailable", "reason": str(error)}
    except Exception as error:  # closing a connection that broke meanwhile
        return {"status": "unavailable", "reason": f"{type(error).__name__}: {error}"}
    return {"status": "ok", "latency_ms": _timed(started)}


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT
    )


def check_redis(settings: Settings) -> dict[str, Any]:
    """PING the Redis that holds the rate limit and the breaker state."""
    started = time.perf_counter()
    try:
        _redis(settings).ping()
    except redis.RedisError as error:
        return {"status": "unavailable", "reason": str(error)}
    return {"status": "ok", "latency_ms": _timed(started)}


def check_breaker(settings: Settings) -> dict[str, Any]:
    """The provider circuit breaker shared by the workers: closed, open or half-open.

    An open breaker means the provider is failing: greetings wait, nothing is lost,
    so it makes the service degraded rather than unavailable.
    """
    try:
        raw = _redis(settings).get(BREAKER_STATE_KEY)
    except redis.RedisError as error:
        return {"status": "unknown", "reason": str(error)}
    state = raw.decode() if raw else "closed"
    return {"status": "ok" if state == "closed" else "degraded", "state": state}


def dispatch_allowance(settings: Settings) -> timedelta:
    """How long the dispatch job may go without a success before the scheduler counts as down."""
    return timedelta(seconds=max(3 * settings.dispatch_interval_seconds, 90))


def queue_depths(settings: Settings) -> dict[str, int | None]:
    """Messages ready in the work queue and its delay and dead-letter queues (None: unknown)."""
    names = [settings.queue_name, f"{settings.queue_name}.DQ", f"{settings.queue_name}.XQ"]
    depths: dict[str, int | None] = dict.fromkeys(names)
    try:
        connection = _open_broker_connection(settings)
    except BrokerUnreachable:
        return depths
    try:
        for name in names:
            # A passive declare of a missing queue closes the channel: one channel each.
            channel = connection.channel()
            try:
                depths[name] = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                continue
            channel.close()
    finally:
        connection.close()
    return depths


def check_scheduler(pool: ConnectionPool, settings: Settings, now: datetime) -> dict[str, Any]:
    """The elected scheduler's heartbeat: its dispatch job must have succeeded lately."""
    allowed = dispatch_allowance(settings)
    with connection_unless_unreachable(pool, CHECK_TIMEOUT) as conn:
        jobs = {row["job"]: row for row in heartbeats.list_all(conn)}
    dispatch = jobs.get("dispatch")
    report: dict[str, Any] = {
        "leader": dispatch["leader"] if dispatch else None,
        "jobs": {name: _job_summary(row) for name, row in jobs.items()},
    }
    last = dispatch["last_success_at"] if dispatch else None
    if last is None or now - last > allowed:
        return {
            **report,
            "status": "unavailable",
            "reason": f"no successful dispatch in the last {allowed}",
        }
    return {**report, "status": "ok"}


def _job_summary(row: dict) -> dict[str, Any]:
    return {
        "last_started_at": row["last_started_at"].isoformat(),
        "last_success_at": row["last_success_at"] and row["last_success_at"].isoformat(),
        "last_error": row["last_error"],
    }
