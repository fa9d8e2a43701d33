"""Secure by default: which binds count as exposed, and what lets an exposed bind start."""

from __future__ import annotations

import pytest

import exposure
from config import Settings

TOKEN = "secure-default-test-token-1"


@pytest.mark.parametrize(
    "bind",
    ["127.0.0.1:8000", "127.0.0.2:8000", "localhost:8000", "[::1]:8000", "::1", "unix:/tmp/a.sock"],
)
def test_loopback_and_unix_sockets_are_local(bind):
    assert exposure.is_local(bind)


@pytest.mark.parametrize(
    "bind", ["0.0.0.0:8000", ":8000", "[::]:8000", "10.1.2.3:8000", "api.example.com:80", "fd://3"]
)
def test_every_other_address_is_exposed(bind):
    assert not exposure.is_local(bind)


def test_an_exposed_bind_without_a_token_is_refused_naming_the_variable():
    reason = exposure.refusal(Settings.from_env({}), ["127.0.0.1:9000", "0.0.0.0:8000"])

    assert "API_TOKENS" in reason and "ALLOW_ANONYMOUS=1" in reason
    assert "0.0.0.0:8000" in reason and "127.0.0.1:9000" not in reason


@pytest.mark.parametrize(
    "environ",
    [
        {"API_TOKENS": TOKEN},
        {"API_TOKEN": TOKEN},
        {"API_READ_TOKENS": TOKEN},
        {"ALLOW_ANONYMOUS": "1"},
    ],
)
def test_a_token_or_allow_anonymous_lets_an_exposed_bind_start(environ):
    # With tokens, unsubscribe links need their address and secret too (config.py).
    links = {"PUBLIC_BASE_URL": "https://greetings.example.com", "UNSUBSCRIBE_SECRET": TOKEN}
    assert exposure.refusal(Settings.from_env({**environ, **links}), ["0.0.0.0:8000"]) is None


def test_metrics_tokens_alone_do_not_protect_users():
    settings = Settings.from_env({"METRICS_TOKENS": TOKEN})

    assert exposure.refusal(settings, ["0.0.0.0:8000"]) is not None
