"""Channels: the ways a greeting reaches a person, behind one port (channels/port.py).

A channel takes a rendered greeting and its idempotency key and answers in the
domain's words (delivered, retry later, refused: domain.delivery_policy); only the
channel knows its transport's codes. The worker builds the one DELIVERY_CHANNEL names
(`build_channel`), and the provider-wide breaker and rate limit (channels/guards.py)
stand in front of whichever it is.

Adding a channel: a module here with a class following `port.Channel`, and its name in
`CHANNELS` (docs/extending.md).
"""

from __future__ import annotations

from channels.http_email import HttpEmailChannel
from channels.port import Channel
from channels.smtp_email import SmtpChannel
from config import ConfigError, Settings

CHANNELS: dict[str, type] = {
    HttpEmailChannel.name: HttpEmailChannel,
    SmtpChannel.name: SmtpChannel,
}


def build_channel(settings: Settings, threads: int) -> Channel:
    """The channel DELIVERY_CHANNEL names, ready for `threads` concurrent deliveries."""
    try:
        channel_class = CHANNELS[settings.delivery_channel]
    except KeyError:
        names = ", ".join(sorted(CHANNELS))
        raise ConfigError(
            f"DELIVERY_CHANNEL must be one of {names}, got {settings.delivery_channel!r}"
        ) from None
    return channel_class(settings, threads)
