"""Baseline for bench.e2e_sends: a Dramatiq actor that does only the provider POST.

    dramatiq bench.raw_drain_actor --processes 1 --threads 8

Same broker kind (RabbitMQ, publisher confirms, quorum queue), same HTTP client
settings as the service's provider client; no database, no Redis.
"""

from __future__ import annotations

import os

import dramatiq
import requests
from requests.adapters import HTTPAdapter

from tasks.broker import QuorumRabbitmqBroker, broker_urls

QUEUE = "raw-drain"

broker = QuorumRabbitmqBroker(url=broker_urls(os.environ["RABBITMQ_URL"]), confirm_delivery=True)
dramatiq.set_broker(broker)

_session = requests.Session()
_session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
_URL = os.environ["EMAIL_SERVICE_URL"].rstrip("/") + "/send-email"


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def raw_post(number: int) -> None:
    """POST one greeting to the provider, nothing else."""
    _session.post(
        _URL,
        json={"email": f"raw{number}@example.com", "message": "Hey, it's your birthday"},
        headers={"Idempotency-Key": f"raw-{number}"},
        timeout=(2, 10),
    ).raise_for_status()
