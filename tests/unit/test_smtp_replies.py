"""What a mail server's reply means (channels/smtp_replies.py), and a greeting's
Message-ID made from its idempotency key and read back (channels/message_ids.py)."""

from __future__ import annotations

import re

import pytest

from channels.message_ids import key_from_message_id, message_id_for
from channels.smtp_replies import answer_for_reply, retry_later
from domain.delivery_policy import Outcome


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [(250, "2.0.0 queued as 4F1", "data"), (251, "user not local; will forward", "rcpt")],
)
def test_a_2xx_reply_is_delivered(code, text, stage):
    answer = answer_for_reply(code, text, stage)

    assert answer.outcome is Outcome.DELIVERED
    assert answer.code == code
    assert answer.detail == f"{code} {text}"
    assert answer.reason is None
    assert answer.no_such_recipient is False


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (421, "4.3.2 service shutting down", "mail"),
        (450, "4.2.1 mailbox busy", "rcpt"),
        (451, "4.3.0 local error", "data"),
        (452, "4.5.3 too many recipients", "rcpt"),
        # 4xx with a 5.1.1 in its text is still temporary: the code decides, not the text.
        (450, "5.1.1 no such user", "rcpt"),
    ],
)
def test_a_4xx_reply_is_retry_later_with_the_reply_kept(code, text, stage):
    answer = answer_for_reply(code, text, stage)

    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.code == code
    assert answer.detail == f"{code} {text}"
    assert f"{code} {text}" in answer.reason
    assert answer.no_such_recipient is False


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (550, "5.1.1 no such user", "rcpt"),
        (550, "5.1.1 no such user", "data"),  # enhanced status says so at any stage
        (551, "5.1.6 user has moved", "rcpt"),
        (553, "5.1.3 bad destination syntax", "rcpt"),
        (550, "5.1.10 recipient address has null MX", "rcpt"),
        (550, "  5.1.2 bad destination system", "rcpt"),
        (550, "mailbox unavailable", "rcpt"),  # bare 550/551/553 to RCPT
        (551, "user not local", "rcpt"),
        (553, "mailbox name not allowed", "rcpt"),
    ],
)
def test_a_refusal_of_the_recipient_address_is_no_such_recipient(code, text, stage):
    answer = answer_for_reply(code, text, stage)

    assert answer.outcome is Outcome.REFUSED
    assert answer.no_such_recipient is True
    assert answer.reason.startswith("no such recipient")
    assert answer.code == code
    assert answer.detail == f"{code} {text}".strip()


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (554, "5.7.1 rejected as spam", "data"),
        (552, "5.2.2 mailbox full", "rcpt"),
        (550, "5.7.1 relaying denied", "rcpt"),  # enhanced status not about the address
        (553, "5.1.7 bad sender mailbox syntax", "mail"),  # 5.1.7/5.1.8: the sender's
        (550, "5.1.8 bad sender's system address", "rcpt"),
        (550, "mailbox unavailable", "data"),  # a bare 550 outside RCPT
        (553, "sender address rejected", "mail"),
        (554, "transaction failed", "rcpt"),
        (550, "4.1.1 odd class", "rcpt"),  # enhanced class 4 under a 5xx: not 5.1.x
    ],
)
def test_any_other_5xx_reply_is_refused_without_blaming_the_address(code, text, stage):
    answer = answer_for_reply(code, text, stage)

    assert answer.outcome is Outcome.REFUSED
    assert answer.no_such_recipient is False
    assert answer.reason == f"mail server refused: {code} {text}"
    assert answer.code == code


@pytest.mark.parametrize("code", [-1, 0, 199, 354, 600, 999])
def test_a_reply_outside_2xx_4xx_5xx_is_never_a_refusal_for_good(code):
    # smtplib reads a reply it cannot parse as -1; 1xx/3xx out of turn are no verdict.
    answer = answer_for_reply(code, "something unexpected", "data")

    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.no_such_recipient is False
    assert answer.code == code


def test_an_empty_reply_text_leaves_just_the_code_as_detail():
    assert answer_for_reply(550, "", "rcpt").detail == "550"


def test_retry_later_carries_the_reason_and_no_transport_code():
    answer = retry_later("connection lost")

    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.reason == "connection lost"
    assert (answer.code, answer.detail, answer.no_such_recipient) == (None, None, False)


# Message-IDs.

KEYS = [
    "1b4e28ba-2fa1-11d2-883f-0016d3cca427:birthday:2024-05-17",
    "plain_key-123",
    "a=b",  # the escape character itself
    "=3a=",  # something that looks escaped already
    "with space/and.dot@at",
    "Zoë:anniversaire:2024-02-29",
    "🎂:🎉",
    '<angle>"quote"',
    ":",
    "::",
    "a:1:b",
    "tab\there\nnewline",
]


@pytest.mark.parametrize("key", KEYS)
def test_a_message_id_reads_back_as_its_key(key):
    message_id = message_id_for(key, "example.com")

    assert key_from_message_id(message_id) == key
    assert key_from_message_id(f"  {message_id}\r\n") == key


@pytest.mark.parametrize("key", KEYS)
def test_a_message_id_is_a_dot_atom_at_the_domain(key):
    message_id = message_id_for(key, "mail.example.com")

    assert re.fullmatch(r"<[A-Za-z0-9_=-]+@mail\.example\.com>", message_id)


def test_the_same_key_always_makes_the_same_message_id_and_others_differ():
    key = "u1:birthday:2024-05-17"

    assert message_id_for(key, "example.com") == message_id_for(key, "example.com")
    assert message_id_for(key, "example.com") != message_id_for(
        "u1:birthday:2025-05-17", "example.com"
    )
    assert message_id_for("a:b", "example.com") != message_id_for("a_b", "example.com")


def test_a_key_of_plain_characters_is_its_own_left_part():
    assert message_id_for("abc_DEF-123", "example.com") == "<abc_DEF-123@example.com>"
    assert message_id_for("a:b", "example.com") == "<a=3a=b@example.com>"


@pytest.mark.parametrize(
    "message_id",
    [
        "",
        "u1=3a=birthday@example.com",  # no angle brackets
        "<u1=3a=birthday@example.com",
        "<u1-birthday>",  # no domain
        "<@example.com>",  # no left part
        "<a=zz=b@example.com>",  # not hex between the =s
        "<a=3A=b@example.com>",  # upper-case hex is not ours
        "<a=3ab@example.com>",  # an escape left open
        "<a:b@example.com>",  # a character we would have escaped
        "<a b@example.com>",
        "<a.b@example.com>",
        "<=110000=@example.com>",  # past the last code point
        "<=ffffffffffffffffffff=@example.com>",
    ],
)
def test_a_message_id_we_did_not_make_reads_as_no_key(message_id):
    assert key_from_message_id(message_id) is None
