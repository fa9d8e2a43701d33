"""Short, bounded looks at RabbitMQ: can any RABBITMQ_URL address be reached, and how
many messages wait in the work queue, its delay queue and its dead-letter queue.

Used by the readiness check, the status page and the scheduler's recovery (which
counts what is still queued before it publishes stale greetings again). Publishing
and consuming are Dramatiq's (tasks/broker.py); nothing here sends a message.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pika
import pika.exceptions

from config import Settings

PROBE_TIMEOUT_SECONDS = 2.0


class BrokerUnreachable(Exception):
    """No address of RABBITMQ_URL answered; the message says why for each."""


def _parameters(address: str, timeout: float) -> pika.URLParameters:
    parameters = pika.URLParameters(address)
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    parameters.connection_attempts = 1
    return parameters


def open_connection(
    settings: Settings, timeout: float = PROBE_TIMEOUT_SECONDS
) -> pika.BlockingConnection:
    """A connection to the first RABBITMQ_URL address that answers, all within `timeout`.

    Each address gets an even share of what is left, so one node that hangs cannot
    use up the time another node needs to answer.
    """
    addresses = settings.rabbitmq_urls
    deadline = time.monotonic() + timeout
    failures = []
    for index, address in enumerate(addresses):
        share = max(0.2, (deadline - time.monotonic()) / (len(addresses) - index))
        try:
            return pika.BlockingConnection(_parameters(address, share))
        except Exception as error:  # pika raises many unrelated types for "unreachable"
            failures.append(f"{address_label(address)}: {type(error).__name__}: {error}")
    raise BrokerUnreachable("; ".join(failures))


def address_label(address: str) -> str:
    """host:port of one address, never its credentials."""
    parts = urlsplit(address)
    return f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


def queue_depths(settings: Settings) -> dict[str, int | None]:
    """Messages ready in the work queue and its delay and dead-letter queues (None: unknown)."""
    names = [settings.queue_name, f"{settings.queue_name}.DQ", f"{settings.queue_name}.XQ"]
    depths: dict[str, int | None] = dict.fromkeys(names)
    try:
        connection = open_connection(settings)
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


def messages_waiting(settings: Settings) -> int | None:
    """Messages waiting in the work queue and its delay queue; None if RabbitMQ cannot say."""
    depths = queue_depths(settings)
    ready = depths[settings.queue_name]
    if ready is None:
        return None
    return ready + (depths[f"{settings.queue_name}.DQ"] or 0)
