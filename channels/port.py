"""The channel port: what the worker hands a channel, and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from domain.delivery_policy import ChannelAnswer


@dataclass(frozen=True)
class OutgoingGreeting:
    """One rendered greeting for one person, with the key every attempt repeats."""

    email: str
    subject: str
    text: str
    idempotency_key: str
    html: str | None = None
    unsubscribe_url: str | None = None  # the one-click link (RFC 8058)


class Channel(Protocol):
    """Delivers greetings; never raises for its transport's trouble (that is an answer:
    retry later), only for bugs."""

    name: ClassVar[str]  # what DELIVERY_CHANNEL says to choose it

    def deliver(self, greeting: OutgoingGreeting) -> ChannelAnswer:
        """One attempt to deliver `greeting`."""
        ...

    def close(self) -> None:
        """Let go of connections."""
        ...
