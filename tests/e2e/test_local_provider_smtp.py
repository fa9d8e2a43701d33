"""The local provider's SMTP side, on a real gunicorn process: messages sent with smtplib
are recorded, deduplicated by their Message-ID's key and broken by the same /control
calls as the HTTP side, whose sends now carry their channel and subject too.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import requests

from channels.message_ids import message_id_for
from provider.app import create_app
from tests.delivery_stack import Provider, free_port

KEY = "1b4e28ba-2fa1-11d2-883f-0016d3cca427:birthday:2024-05-17"
TEXT = "Hey, Ada Lovelace it's your birthday"
HTML = "<p>Hey, Ada Lovelace it's your birthday</p>"


@pytest.fixture(scope="module")
def running_provider() -> Iterator[Provider]:
    """The provider with its SMTP side in a gunicorn process of its own, for this module."""
    server = Provider(smtp=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local(running_provider: Provider) -> Provider:
    """The module's provider, with nothing recorded and no failure planned."""
    running_provider.reset()
    return running_provider


def greeting(key: str | None = KEY, to: str = "ada@example.com") -> EmailMessage:
    """A greeting as the SMTP channel would send it; `key` None leaves out the Message-ID."""
    message = EmailMessage()
    message["From"] = "greetings@example.com"
    message["To"] = to
    message["Subject"] = "Happy birthday!"
    if key is not None:
        message["Message-ID"] = message_id_for(key, "example.com")
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    return message


def send(provider: Provider, message: EmailMessage) -> None:
    """Send `message` to the provider's SMTP side on a connection of its own."""
    with smtplib.SMTP("127.0.0.1", provider.smtp_port, timeout=10) as client:
        client.send_message(message)


def failed_send(provider: Provider, message: EmailMessage) -> smtplib.SMTPDataError:
    """The error the provider's reply to DATA raises in smtplib."""
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(provider, message)
    return refused.value


def test_a_message_is_delivered_with_its_key_subject_text_html_and_headers(local):
    send(local, greeting())

    [delivery] = local.deliveries()
    assert delivery["channel"] == "smtp"
    assert delivery["idempotency_key"] == KEY
    assert delivery["email"] == "ada@example.com"
    assert delivery["mail_from"] == "greetings@example.com"
    assert delivery["subject"] == "Happy birthday!"
    assert delivery["message"] == TEXT
    assert delivery["html"].strip() == HTML
    assert delivery["message_id"] == message_id_for(KEY, "example.com")
    assert delivery["headers"]["Message-ID"] == message_id_for(KEY, "example.com")
    assert delivery["headers"]["Subject"] == "Happy birthday!"
    assert delivery["headers"]["To"] == "ada@example.com"
    assert delivery["headers"]["Content-Type"].startswith("multipart/alternative")


def test_a_resend_of_a_key_is_recorded_twice_and_delivered_once(local):
    send(local, greeting())
    send(local, greeting())

    seen = local.requests_seen()
    assert [(r["channel"], r["idempotency_key"]) for r in seen] == [("smtp", KEY)] * 2
    assert [d["idempotency_key"] for d in local.deliveries()] == [KEY]


@pytest.mark.parametrize(
    ("fail_status", "smtp_code"),
    [(503, 451), (500, 451), (429, 451), (400, 554), (404, 554)],
)
def test_an_injected_failure_is_answered_with_the_mapped_smtp_reply(local, fail_status, smtp_code):
    local.control(fail_status=fail_status, fail_count=1)

    refused = failed_send(local, greeting())
    assert refused.smtp_code == smtp_code
    assert local.deliveries() == []

    send(local, greeting())  # the one planned failure is spent
    assert [d["idempotency_key"] for d in local.deliveries()] == [KEY]
    assert len(local.requests_seen()) == 2


def test_no_such_recipient_makes_a_permanent_failure_a_5_1_1(local):
    local.control(fail_status=400, fail_count=1, no_such_recipient=True)

    refused = failed_send(local, greeting())

    assert refused.smtp_code == 550
    assert refused.smtp_error.startswith(b"5.1.1")


def test_smtp_reply_is_answered_exactly_instead_of_the_mapping(local):
    local.control(fail_status=503, fail_count=1, smtp_reply="421 4.3.2 bye")

    refused = failed_send(local, greeting())

    assert refused.smtp_code == 421
    assert refused.smtp_error == b"4.3.2 bye"
    assert local.deliveries() == []


def test_smtp_drop_closes_the_connection_and_the_next_one_works(local):
    local.control(fail_count=1, smtp_drop=True)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(local, greeting())
    assert local.deliveries() == []

    send(local, greeting())
    assert [d["idempotency_key"] for d in local.deliveries()] == [KEY]
    assert [r["idempotency_key"] for r in local.requests_seen()] == [KEY, KEY]


def test_delay_ms_delays_the_answer(local):
    local.control(delay_ms=700)

    started = time.monotonic()
    send(local, greeting())
    elapsed = time.monotonic() - started

    assert elapsed >= 0.7
    assert len(local.deliveries()) == 1


def test_a_message_without_a_message_id_is_refused_and_recorded_without_a_key(local):
    refused = failed_send(local, greeting(key=None))

    assert refused.smtp_code == 550
    assert b"Message-ID" in refused.smtp_error
    [seen] = local.requests_seen()
    assert seen["channel"] == "smtp"
    assert seen["idempotency_key"] is None
    assert seen["email"] == "ada@example.com"
    assert local.deliveries() == []


def test_a_message_id_not_made_from_a_key_is_refused(local):
    message = greeting(key=None)
    message["Message-ID"] = "<not:a:key@example.com>"

    refused = failed_send(local, message)

    assert refused.smtp_code == 550
    assert local.requests_seen()[0]["idempotency_key"] is None


def post_send(provider: Provider, key: str, body: dict) -> requests.Response:
    return requests.post(
        f"{provider.url}/send-email", json=body, headers={"Idempotency-Key": key}, timeout=5
    )


def test_the_http_side_reports_its_channel_and_stores_a_subject_and_html(local):
    body = {"email": "ada@example.com", "message": TEXT, "subject": "Hi", "html": HTML}
    answer = post_send(local, KEY, body)

    assert answer.status_code == 200
    [delivery] = local.deliveries()
    assert delivery["channel"] == "http"
    assert (delivery["subject"], delivery["html"], delivery["message"]) == ("Hi", HTML, TEXT)
    [seen] = local.requests_seen()
    assert (seen["channel"], seen["idempotency_key"]) == ("http", KEY)


def test_the_http_side_stores_null_without_subject_and_refuses_a_non_string_one(local):
    assert post_send(local, KEY, {"email": "ada@example.com", "message": TEXT}).ok
    refused = post_send(local, "other", {"email": "a@example.com", "message": TEXT, "subject": 1})

    assert refused.status_code == 400
    [delivery] = local.deliveries()
    assert delivery["subject"] is None and delivery["html"] is None


def test_both_channels_share_one_key_space_and_one_control(local):
    local.control(fail_status=503, fail_count=2)
    assert post_send(local, KEY, {"email": "ada@example.com", "message": TEXT}).status_code == 503
    assert failed_send(local, greeting()).smtp_code == 451

    assert post_send(local, KEY, {"email": "ada@example.com", "message": TEXT}).ok
    send(local, greeting())  # the same key by SMTP: a duplicate

    [delivery] = local.deliveries()
    assert delivery["channel"] == "http"
    assert [r["channel"] for r in local.requests_seen()] == ["http", "smtp", "http", "smtp"]


def test_create_app_runs_an_smtp_server_only_when_given_a_port():
    assert "provider_smtp" not in create_app().extensions

    port = free_port()
    app = create_app(smtp_port=port)
    controller = app.extensions["provider_smtp"]
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.noop()[0] == 250
    finally:
        controller.stop()
