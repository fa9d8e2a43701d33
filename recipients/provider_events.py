"""What the provider tells us about sent greetings (POST /webhooks/provider). Joins its
caller's transaction.

Each event is accepted once, by its id: a replay changes nothing. A hard bounce or a
complaint suppresses the address; a soft bounce is recorded only; `delivered` stamps
the greeting its key names with the time the provider gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from recipients.suppression import suppress
from repositories import provider_events


@dataclass(frozen=True)
class ProviderEvent:
    id: str
    type: str  # bounce, complaint, delivered
    email: str
    at: datetime
    bounce_type: str | None = None  # hard, soft (bounces only)
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    accepted: int  # new events, applied
    duplicates: int  # ids seen before: nothing done


def record_events(conn: psycopg.Connection, events: Sequence[ProviderEvent]) -> Outcome:
    """Record and apply each new event, in order."""
    accepted = 0
    for event in events:
        is_new = provider_events.insert(
            conn,
            event.id,
            event.type,
            event.bounce_type,
            event.email,
            event.idempotency_key,
            event.at,
        )
        if is_new:
            _apply(conn, event)
            accepted += 1
    return Outcome(accepted, len(events) - accepted)


def _apply(conn: psycopg.Connection, event: ProviderEvent) -> None:
    detail = f"provider event {event.id}"
    if event.type == "bounce" and event.bounce_type == "hard":
        suppress(conn, event.email, "bounce", "webhook", detail)
    elif event.type == "complaint":
        suppress(conn, event.email, "complaint", "webhook", detail)
    elif event.type == "delivered" and event.idempotency_key:
        provider_events.mark_delivered(conn, event.idempotency_key, event.at)
