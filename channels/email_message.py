"""A greeting as an Internet message (RFC 5322), for channels that speak mail."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime

from channels.message_ids import message_id_for
from channels.port import OutgoingGreeting

# Bodies in other scripts go quoted-printable or base64, never as 8-bit data: a server
# without 8BITMIME (RFC 6152) may refuse that, and we do not ask for BODY=8BITMIME.
_SEVEN_BIT = default.clone(cte_type="7bit")


def compose(
    greeting: OutgoingGreeting, sender: str, sender_domain: str, now: datetime
) -> EmailMessage:
    """From, To, Subject, Date and a Message-ID made from the greeting's key (the same on
    every attempt); a text part, and an HTML alternative when the greeting has one."""
    message = EmailMessage(policy=_SEVEN_BIT)
    message["From"] = sender
    message["To"] = greeting.email
    message["Subject"] = greeting.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(greeting.idempotency_key, sender_domain)
    if greeting.unsubscribe_url is not None:
        # RFC 2369 and RFC 8058: mailbox providers show their own unsubscribe button
        # and POST List-Unsubscribe=One-Click to the link.
        message["List-Unsubscribe"] = f"<{greeting.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(greeting.text)
    if greeting.html is not None:
        message.add_alternative(greeting.html, subtype="html")
    return message
