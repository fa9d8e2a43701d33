"""Choosing the channel: DELIVERY_CHANNEL names one of channels.CHANNELS."""

from __future__ import annotations

import pytest

from channels import CHANNELS, build_channel
from channels.http_email import HttpEmailChannel
from config import ConfigError, Settings


def test_the_default_channel_is_the_http_email_api():
    channel = build_channel(Settings.from_env({}), threads=2)
    try:
        assert isinstance(channel, HttpEmailChannel)
        assert channel.url == "http://127.0.0.1:8025/send-email"
    finally:
        channel.close()


def test_an_unknown_channel_stops_the_worker_naming_the_variable_and_the_choices():
    settings = Settings.from_env({"DELIVERY_CHANNEL": "carrier-pigeon"})

    with pytest.raises(ConfigError, match=r"DELIVERY_CHANNEL must be one of http"):
        build_channel(settings, threads=2)


def test_every_channel_is_registered_under_its_own_name():
    assert all(name == channel.name for name, channel in CHANNELS.items())
