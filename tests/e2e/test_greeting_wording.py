"""The words a greeting is sent in: templates per occasion and locale, rendered by the
worker at the send (the actor called in this process), over both channels, against the
real local provider."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from tests import factories

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def send(db, worker, provider):
    """Send one QUEUED greeting through the provider's channel; the provider's record."""
    from tasks.send import send_greeting

    worker(MAIL_FROM="Greetings <greetings@example.com>")

    def send_one(greeting: dict) -> dict:
        send_greeting(greeting["id"], greeting["occasion_date"].isoformat())
        delivered = [
            d for d in provider.deliveries() if d["idempotency_key"] == greeting["idempotency_key"]
        ]
        assert len(delivered) == 1, provider.requests_seen()
        # once: one raw request (or SMTP transaction) for the key, not only one delivery
        assert provider.calls_per_key()[greeting["idempotency_key"]] == 1
        assert delivered[0]["channel"] == provider.channel
        return delivered[0]

    return send_one


def queued_birthday(db, **user_fields) -> dict:
    """A birthday greeting due now, QUEUED, planned with the built-in wording."""
    now = datetime.now(UTC)
    today = now.date()
    user = factories.make_user(
        db,
        timezone="UTC",
        birthday=date(1990, today.month, today.day if (today.month, today.day) != (2, 29) else 28),
        email=f"wording-{uuid.uuid4().hex[:8]}@example.com",
        **user_fields,
    )
    return factories.make_message(
        db,
        user,
        status="QUEUED",
        scheduled=now - timedelta(minutes=1),
        occasion_date=now.date()
        if (today.month, today.day) != (2, 29)
        else date(today.year, 2, 28),
        locked_until=now + timedelta(minutes=5),
        message_content="Hey, Ada Lovelace it's your birthday",
    )


def store_template(db, locale: str, subject: str, text: str, html: str | None = None) -> None:
    db.execute(
        "INSERT INTO greeting_templates (message_type, locale, subject, body_text, body_html)"
        " VALUES ('BIRTHDAY', %s, %s, %s, %s)",
        (locale, subject, text, html),
    )


def sent_row(db, greeting: dict) -> dict:
    return db.execute(
        "SELECT status, subject, message_content FROM message_logs WHERE id = %s",
        (greeting["id"],),
    ).fetchone()


def test_nobody_edited_anything_so_the_built_in_wording_is_sent(db, send):
    greeting = queued_birthday(db)

    delivered = send(greeting)

    assert delivered["message"] == "Hey, Ada Lovelace it's your birthday"
    assert delivered["subject"] == "Happy birthday, Ada!"
    row = sent_row(db, greeting)
    assert row["status"] == "SENT"
    assert (row["subject"], row["message_content"]) == (
        "Happy birthday, Ada!",
        "Hey, Ada Lovelace it's your birthday",
    )


def test_a_template_stored_after_planning_is_the_one_sent_in_the_closest_locale(db, send):
    greeting = queued_birthday(db, locale="pt-BR", location_city="Lisboa")
    store_template(db, "pt", "Parabéns, {{ first_name }}!", "{{ years }} anos em {{ city }}")
    store_template(db, "fr", "Joyeux anniversaire", "Bonjour {{ first_name }}")

    delivered = send(greeting)

    years = greeting["occasion_date"].year - 1990
    assert delivered["subject"] == "Parabéns, Ada!"
    assert delivered["message"] == f"{years} anos em Lisboa"
    row = sent_row(db, greeting)
    assert (row["subject"], row["message_content"]) == ("Parabéns, Ada!", f"{years} anos em Lisboa")


def test_a_user_without_a_locale_gets_the_stored_default_with_its_html(db, send):
    greeting = queued_birthday(db, last_name="<Lovelace>")
    store_template(db, "en", "English", "English text")
    store_template(
        db, "default", "Hi {{ first_name }}", "Dear {{ full_name }}", "<p>{{ full_name }}</p>"
    )

    delivered = send(greeting)

    assert (delivered["subject"], delivered["message"]) == ("Hi Ada", "Dear Ada <Lovelace>")
    assert delivered["html"] == "<p>Ada &lt;Lovelace&gt;</p>"


def test_a_template_that_fails_on_this_users_data_gives_way_to_the_built_in_wording(db, send):
    # Checked against sample data (a city) when stored; this user has none.
    greeting = queued_birthday(db, location_city=None)
    store_template(db, "default", "Hi", "{{ city }}")

    delivered = send(greeting)

    assert delivered["message"] == "Hey, Ada Lovelace it's your birthday"
    assert sent_row(db, greeting)["status"] == "SENT"


def test_every_greeting_carries_a_one_click_link_that_unsubscribes(db, send, client, provider):
    greeting = queued_birthday(db)
    store_template(db, "default", "Hi", "Bye? {{ unsubscribe_url }}")

    delivered = send(greeting)

    url = delivered["unsubscribe_url"]
    assert url.startswith("http://127.0.0.1:8000/unsubscribe/")
    assert delivered["message"] == f"Bye? {url}"
    if provider.channel == "smtp":
        assert delivered["headers"]["List-Unsubscribe"] == f"<{url}>"
        assert delivered["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    answer = client.post(
        url.removeprefix("http://127.0.0.1:8000"), data={"List-Unsubscribe": "One-Click"}
    )
    assert answer.status_code == 200
    user = db.execute(
        "SELECT unsubscribed FROM users WHERE id = %s", (greeting["user_id"],)
    ).fetchone()
    assert user["unsubscribed"] == ["BIRTHDAY"]
