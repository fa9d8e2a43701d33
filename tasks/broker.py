"""The Dramatiq broker: RabbitMQ with quorum queues and publisher confirms.

Imported (by tasks/__init__.py) before any actor module, so actors bind to it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker, xq_name
from dramatiq.middleware import Middleware
from dramatiq.middleware.prometheus import Prometheus

from config import Settings, split_rabbitmq_url
from log_setup import configure_logging
from tasks.runtime import BuildWorkerResources


class QuorumRabbitmqBroker(RabbitmqBroker):
    """Declares quorum queues: replicated across a RabbitMQ cluster, so losing a node
    loses no message. Covers the work queue, its delay queue (.DQ) and its dead-letter
    queue (.XQ). Quorum queues refuse x-max-priority, so no priorities here. A queue's
    type is fixed when first declared: an existing classic queue must be deleted first.
    """

    def _build_queue_arguments(self, queue_name: str) -> dict:
        return {**super()._build_queue_arguments(queue_name), "x-queue-type": "quorum"}

    def _declare_xq_queue(self, queue_name: str):
        return self.channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={"x-message-ttl": DEAD_MESSAGE_TTL, "x-queue-type": "quorum"},
        )


class JsonLogging(Middleware):
    """Configure logging in every worker process after Dramatiq set up its own.

    The dramatiq CLI installs a text handler in each worker process after our
    modules were imported; this puts the service's format back (LOG_FORMAT). The
    master process's own supervision lines keep Dramatiq's format.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def after_process_boot(self, broker) -> None:
        configure_logging(self.settings.log_level, self.settings.log_format)


# A RabbitMQ memory or disk alarm blocks publishers without closing their connection:
# give up after this long (the publish raises, the rows stay QUEUED for recovery) so a
# blocked broker cannot freeze the scheduler while it holds the leader lock.
BLOCKED_CONNECTION_TIMEOUT_SECONDS = 30
HEARTBEAT_SECONDS = 30


def broker_url(url: str) -> str:
    """RABBITMQ_URL with a blocked-connection timeout and heartbeat unless it sets its own."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("blocked_connection_timeout", str(BLOCKED_CONNECTION_TIMEOUT_SECONDS))
    query.setdefault("heartbeat", str(HEARTBEAT_SECONDS))
    return urlunsplit(parts._replace(query=urlencode(query)))


def broker_urls(rabbitmq_url: str) -> list[str]:
    """Each address of RABBITMQ_URL, in its order, with the timeouts of `broker_url`."""
    return [broker_url(address) for address in split_rabbitmq_url(rabbitmq_url)]


def build_broker(settings: Settings) -> RabbitmqBroker:
    """A broker for RABBITMQ_URL that waits for RabbitMQ to confirm every publish.

    With several addresses (the nodes of a cluster) every new connection, the first
    and each one after a connection drops, tries them in order and keeps the first
    that answers: pika gets them as a list. The Prometheus middleware serves worker
    metrics on port `dramatiq_prom_port` (default 9191) from the worker master process.
    """
    broker = QuorumRabbitmqBroker(url=broker_urls(settings.rabbitmq_url), confirm_delivery=True)
    broker.add_middleware(Prometheus())
    broker.add_middleware(JsonLogging(settings))
    broker.add_middleware(BuildWorkerResources())
    return broker


broker = build_broker(Settings.from_env())
dramatiq.set_broker(broker)
