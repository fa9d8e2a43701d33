from datetime import time, timedelta

import pytest

from app import create_app
from config import DEFAULT_DATABASE_URL, ConfigError, Settings, split_rabbitmq_url


def test_defaults_work_with_an_empty_environment():
    settings = Settings.from_env({})

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.db_pool_min_size, settings.db_pool_max_size) == (2, 20)
    assert settings.db_pool_max_idle == 30
    assert settings.db_connect_timeout == 2
    assert settings.send_time == time(9, 0)
    assert settings.max_lateness == timedelta(hours=48)


def test_environment_values_are_parsed():
    settings = Settings.from_env(
        {"DB_POOL_MAX_SIZE": "7", "SEND_TIME": "08:30", "MAX_LATENESS": "90m", "SQL_LOG": "1"}
    )

    assert settings.db_pool_max_size == 7
    assert settings.send_time == time(8, 30)
    assert settings.max_lateness == timedelta(minutes=90)
    assert settings.sql_log is True


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DB_POOL_MIN_SIZE": "-1"}, "DB_POOL_MIN_SIZE"),
        ({"DB_POOL_MAX_SIZE": "many"}, "DB_POOL_MAX_SIZE"),
        ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, "DB_POOL_MAX_SIZE"),
        ({"DATABASE_URL": "mysql://localhost/x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://host:notaport/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://127.0.0.1:5432"}, "DATABASE_URL"),
        ({"SEND_TIME": "25:00"}, "SEND_TIME"),
        ({"MAX_LATENESS": "two days"}, "MAX_LATENESS"),
        ({"SQL_LOG": "maybe"}, "SQL_LOG"),
        ({"DB_CONNECT_TIMEOUT": "0"}, "DB_CONNECT_TIMEOUT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_invalid_values_stop_startup_naming_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(environ)


def test_create_app_refuses_a_bad_setting():
    with pytest.raises(ConfigError, match="DB_POOL_MIN_SIZE"):
        create_app({"DB_POOL_MIN_SIZE": -3})


@pytest.mark.parametrize(
    "environ",
    [
        {"IDEMPOTENCY_STALE_AFTER": "30s"},  # equal to GUNICORN_TIMEOUT's default
        {"IDEMPOTENCY_STALE_AFTER": "60s", "GUNICORN_TIMEOUT": "90"},
        {"IDEMPOTENCY_STALE_AFTER": "60s", "DB_STATEMENT_TIMEOUT_MS": "120000"},
    ],
)
def test_an_idempotency_stale_window_not_longer_than_a_request_stops_startup(environ):
    with pytest.raises(ConfigError, match="IDEMPOTENCY_STALE_AFTER must be longer"):
        Settings.from_env(environ)


def test_an_idempotency_stale_window_longer_than_any_request_is_accepted():
    settings = Settings.from_env({"IDEMPOTENCY_STALE_AFTER": "31s", "GUNICORN_TIMEOUT": "30"})

    assert settings.idempotency_stale_after == timedelta(seconds=31)


@pytest.mark.parametrize(
    "environ",
    [
        # The default 30 s wait for the rate limit + 2 s connect + 10 s read.
        {"SENDING_LEASE": "40s"},
        {"SENDING_LEASE": "12s", "PROVIDER_RATE_LIMIT_WAIT": "0s"},
        {
            "SENDING_LEASE": "5s",
            "PROVIDER_RATE_LIMIT_WAIT": "1s",
            "PROVIDER_READ_TIMEOUT": "3",
            "PROVIDER_CONNECT_TIMEOUT": "1",
        },
    ],
)
def test_a_sending_lease_not_longer_than_the_longest_attempt_stops_startup(environ):
    # Recovery would queue the greeting again while its first POST may still be under way.
    with pytest.raises(ConfigError, match=r"SENDING_LEASE .* longest send attempt"):
        Settings.from_env(environ)


def test_a_sending_lease_longer_than_the_longest_attempt_is_accepted():
    settings = Settings.from_env(
        {
            "SENDING_LEASE": "5s",
            "PROVIDER_RATE_LIMIT_WAIT": "0.5s",
            "PROVIDER_READ_TIMEOUT": "3",
            "PROVIDER_CONNECT_TIMEOUT": "1",
        }
    )

    assert settings.longest_send_attempt == timedelta(seconds=4.5)


def test_a_single_rabbitmq_url_is_one_address_unchanged():
    url = "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=10"

    settings = Settings.from_env({"RABBITMQ_URL": url})

    assert settings.rabbitmq_url == url
    assert settings.rabbitmq_urls == (url,)
    assert split_rabbitmq_url(url) == (url,)


@pytest.mark.parametrize("separator", [",", ";", ", ", " ; "])
def test_several_rabbitmq_urls_become_addresses_in_their_order(separator):
    nodes = ["amqp://u:p@rabbit1:5672/%2F", "amqp://u:p@rabbit2:5673/%2F", "amqps://rabbit3/v"]

    settings = Settings.from_env({"RABBITMQ_URL": separator.join(nodes)})

    assert settings.rabbitmq_urls == tuple(nodes)


def test_a_comma_inside_one_rabbitmq_url_query_does_not_split_it():
    url = "amqp://h:5672/%2F?ssl_options={'a':1,'b':2}"

    assert split_rabbitmq_url(url) == (url,)


@pytest.mark.parametrize(
    "raw",
    [
        "amqp://rabbit1:5672/%2F,http://rabbit2:5672/%2F",
        "amqp://rabbit1:5672/%2F;rabbit2:5672",
        "amqp://rabbit1:5672/%2F,amqp://rabbit2:notaport/%2F",
        "amqp://guest:guest@rabbit1:5672,rabbit2:5672/%2F",
        " , ",
    ],
)
def test_a_bad_address_anywhere_in_rabbitmq_url_stops_startup_naming_it(raw):
    with pytest.raises(ConfigError, match="RABBITMQ_URL"):
        Settings.from_env({"RABBITMQ_URL": raw})


def _as_text(value: object) -> str | None:
    """A default as an operator would write it in the environment (None: no such text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, (int, float, str)):
        return str(value)
    return None  # no token lists or absent tokens by default


def test_every_setting_reads_its_default_written_as_text_back_as_the_default():
    from dataclasses import fields

    defaults = Settings()
    for setting in fields(Settings):
        text = _as_text(getattr(defaults, setting.name))
        if text is None:
            continue
        read = Settings.from_env({setting.name.upper(): text})
        assert getattr(read, setting.name) == getattr(defaults, setting.name), setting.name
