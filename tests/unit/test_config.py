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
        {
            "DB_POOL_MAX_SIZE": "7",
            "SEND_TIME": "08:30",
            "MAX_LATENESS": "90m",
            "SQL_LOG": "1",
            "WORKER_BATCH_LINGER": "2.5ms",
        }
    )

    assert settings.db_pool_max_size == 7
    assert settings.send_time == time(8, 30)
    assert settings.max_lateness == timedelta(minutes=90)
    assert settings.sql_log is True
    assert settings.worker_batch_linger == timedelta(microseconds=2500)


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
        ({"WORKER_BATCH_LINGER": "2s"}, "WORKER_BATCH_LINGER"),
        ({"WORKER_BATCH_LINGER": "5 msec"}, "WORKER_BATCH_LINGER"),
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
        seconds = value.total_seconds()
        return f"{seconds:g}s" if seconds >= 1 or not seconds else f"{seconds * 1000:g}ms"
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


# The SMTP channel's settings: SMTP_URL (or SMTP_URL_FILE), MAIL_FROM, SMTP_CA_FILE.


@pytest.mark.parametrize(
    ("url", "security", "host", "port"),
    [
        ("smtp://mail.example.com", "plain", "mail.example.com", 25),
        ("smtp+starttls://mail.example.com", "starttls", "mail.example.com", 587),
        ("smtps://mail.example.com", "tls", "mail.example.com", 465),
        ("smtp://mail.example.com:2525", "plain", "mail.example.com", 2525),
        ("smtp+starttls://localhost:1587/", "starttls", "localhost", 1587),
        ("smtps://[::1]:4650", "tls", "::1", 4650),
    ],
)
def test_smtp_url_schemes_choose_the_security_and_default_port(url, security, host, port):
    server = Settings.from_env({"SMTP_URL": url}).smtp_server

    assert (server.security, server.host, server.port) == (security, host, port)
    assert (server.username, server.password) == (None, None)


def test_the_default_smtp_url_is_a_local_server_in_the_clear():
    server = Settings.from_env({}).smtp_server

    assert (server.security, server.host, server.port) == ("plain", "127.0.0.1", 1025)


def test_smtp_url_user_and_password_are_percent_decoded_and_kept_out_of_repr():
    settings = Settings.from_env(
        {"SMTP_URL": "smtp+starttls://us%40er:s3cr%40t%3Aw%2Fx@mail.example.com"}
    )

    server = settings.smtp_server
    assert (server.username, server.password) == ("us@er", "s3cr@t:w/x")
    assert "s3cr" not in repr(settings)
    assert "s3cr" not in repr(server)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@mail.example.com",
        "smtp+ssl://user:s3cret@mail.example.com",
        "user:s3cret@mail.example.com",
        "smtp://user:s3cret@mail.example.com:notaport",
        "smtp://user:s3cret@mail.example.com:70000",
        "smtp://user:s3cret@",
        "smtp://user:s3cret@mail.example.com/inbox",
        "smtp://user:s3cret@mail.example.com?tls=1",
        # A password with / ? # left unencoded: urlsplit reads a path, query or fragment.
        "smtp://user:s3/cret@mail.example.com",
        "smtp://user:s3?cret@mail.example.com",
        "smtp://user:s3#cret@mail.example.com",
        "smtp://user@mail.example.com",  # a user without a password
        "smtp://:s3cret@mail.example.com",  # an empty user
        "smtp://user:@mail.example.com",  # an empty password
    ],
)
def test_a_bad_smtp_url_stops_startup_naming_it_and_never_showing_the_password(url):
    with pytest.raises(ConfigError, match="SMTP_URL") as raised:
        Settings.from_env({"SMTP_URL": url})

    message = str(raised.value)
    assert "s3" not in message
    assert "cret" not in message


def test_smtp_url_is_read_from_smtp_url_file(tmp_path):
    secret = tmp_path / "smtp_url"
    secret.write_text("smtps://greeter:s3cret@mail.example.com:2465\n")

    settings = Settings.from_env({"SMTP_URL_FILE": str(secret)})

    assert settings.smtp_url == "smtps://greeter:s3cret@mail.example.com:2465"
    server = settings.smtp_server
    assert (server.security, server.host, server.port) == ("tls", "mail.example.com", 2465)
    assert (server.username, server.password) == ("greeter", "s3cret")


def test_smtp_url_and_smtp_url_file_together_stop_startup(tmp_path):
    secret = tmp_path / "smtp_url"
    secret.write_text("smtps://greeter:s3cret@mail.example.com")

    with pytest.raises(ConfigError, match="set SMTP_URL or SMTP_URL_FILE, not both"):
        Settings.from_env({"SMTP_URL": "smtp://mail.example.com", "SMTP_URL_FILE": str(secret)})


def test_an_unreadable_smtp_url_file_stops_startup_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="SMTP_URL_FILE cannot be read"):
        Settings.from_env({"SMTP_URL_FILE": str(tmp_path / "missing")})


def test_a_bad_url_in_smtp_url_file_stops_startup_without_showing_the_password(tmp_path):
    secret = tmp_path / "smtp_url"
    secret.write_text("imap://greeter:s3cret@mail.example.com")

    with pytest.raises(ConfigError, match="SMTP_URL") as raised:
        Settings.from_env({"SMTP_URL_FILE": str(secret)})

    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "header", "address"),
    [
        ("Greetings <hi@example.com>", "Greetings <hi@example.com>", "hi@example.com"),
        ("hi@example.com", "hi@example.com", "hi@example.com"),
        ("greetings@localhost", "greetings@localhost", "greetings@localhost"),
        (
            '"Birthday, Team" <hi@example.com>',
            '"Birthday, Team" <hi@example.com>',
            "hi@example.com",
        ),
        (
            "  Greetings <hi@mail.example.com>  ",
            "Greetings <hi@mail.example.com>",
            "hi@mail.example.com",
        ),
    ],
)
def test_mail_from_gives_the_from_header_and_the_envelope_sender(raw, header, address):
    assert Settings.from_env({"MAIL_FROM": raw}).mail_sender == (header, address)


def test_the_default_mail_from_is_a_local_address():
    assert Settings.from_env({}).mail_sender[1] == "greetings@localhost"


@pytest.mark.parametrize(
    "raw",
    [
        "Greetings",
        "example.com",
        "hi@example",  # a domain without a dot (only localhost may)
        "@example.com",
        "Greetings <>",
        "Greetings <hi@example.com>\nBcc: everyone@example.com",
        "Greetings <hi@example.com>\r\nBcc: everyone@example.com",
        "hi@exa\nmple.com",
        "<hi@example.com>, <other@example.org>",  # two senders
    ],
)
def test_a_bad_mail_from_stops_startup_naming_it(raw):
    with pytest.raises(ConfigError, match="MAIL_FROM"):
        Settings.from_env({"MAIL_FROM": raw})


def test_smtp_ca_file_names_a_file_to_trust(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")

    assert Settings.from_env({"SMTP_CA_FILE": str(bundle)}).smtp_ca_file == str(bundle)


@pytest.mark.parametrize("name", ["missing.pem", "."])
def test_an_smtp_ca_file_that_is_not_a_file_stops_startup(tmp_path, name):
    with pytest.raises(ConfigError, match="SMTP_CA_FILE is not a file"):
        Settings.from_env({"SMTP_CA_FILE": str(tmp_path / name)})


def test_delivery_channel_smtp_builds_the_smtp_channel_from_its_settings():
    from channels import build_channel
    from channels.smtp_email import SmtpChannel

    settings = Settings.from_env(
        {
            "DELIVERY_CHANNEL": "smtp",
            "SMTP_URL": "smtp+starttls://greeter:s3cret@mail.example.com",
            "MAIL_FROM": "Greetings <hi@example.com>",
        }
    )

    channel = build_channel(settings, threads=2)
    try:
        assert isinstance(channel, SmtpChannel)
        assert (channel.server.host, channel.server.port) == ("mail.example.com", 587)
        assert channel.sender == "Greetings <hi@example.com>"
        assert channel.envelope_sender == "hi@example.com"
    finally:
        channel.close()


LINKS = {"PUBLIC_BASE_URL": "https://greetings.example.com", "UNSUBSCRIBE_SECRET": "s" * 24}


@pytest.mark.parametrize("missing", ["PUBLIC_BASE_URL", "UNSUBSCRIBE_SECRET"])
def test_tokens_without_the_unsubscribe_links_address_or_secret_stop_startup(missing):
    environ = {"API_TOKENS": "t" * 24, **LINKS}
    del environ[missing]

    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(environ)


def test_without_tokens_the_links_point_at_the_local_api():
    settings = Settings.from_env({})

    assert settings.unsubscribe_base_url == "http://127.0.0.1:8000"
    assert settings.unsubscribe_signing_secret


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PUBLIC_BASE_URL": "ftp://example.com"}, "PUBLIC_BASE_URL"),
        ({"UNSUBSCRIBE_SECRET": "short"}, "UNSUBSCRIBE_SECRET"),
    ],
)
def test_a_bad_links_setting_stops_startup_naming_it(environ, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(environ)


def test_the_unsubscribe_secret_may_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("f" * 24 + "\n")

    settings = Settings.from_env({"UNSUBSCRIBE_SECRET_FILE": str(secret)})

    assert settings.unsubscribe_signing_secret == "f" * 24


@pytest.mark.parametrize(
    ("raw", "hours"),
    [
        ("08:00-21:00", (time(8), time(21))),
        (" 07:30 - 22:15 ", (time(7, 30), time(22, 15))),
        ("off", None),
        ("OFF", None),
    ],
)
def test_delivery_window_is_read_as_local_hours_or_off(raw, hours):
    assert Settings.from_env({"DELIVERY_WINDOW": raw}).delivery_hours == hours


@pytest.mark.parametrize(
    "raw", ["21:00-08:00", "09:00-09:00", "8-21", "08:00", "always", "25:00-26:00"]
)
def test_a_bad_delivery_window_stops_startup_naming_it(raw):
    with pytest.raises(ConfigError, match="DELIVERY_WINDOW"):
        Settings.from_env({"DELIVERY_WINDOW": raw})


@pytest.mark.parametrize(
    "environ",
    [{"SEND_TIME": "07:59"}, {"SEND_TIME": "21:00"}, {"DELIVERY_WINDOW": "10:00-20:00"}],
)
def test_send_time_outside_the_window_stops_startup_saying_so(environ):
    with pytest.raises(ConfigError, match=r"SEND_TIME .* outside DELIVERY_WINDOW"):
        Settings.from_env(environ)


def test_send_time_may_be_anything_with_the_window_off():
    assert Settings.from_env({"SEND_TIME": "03:00", "DELIVERY_WINDOW": "off"}).send_time == time(3)
