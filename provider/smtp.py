"""The local provider's SMTP side: an aiosmtpd handler on the provider's shared state.

Each DATA is one send. Its idempotency key is read from the Message-ID header
(channels/message_ids.py); every transaction is recorded in the provider's requests,
/control's failures and delay apply as on the HTTP side (fail_status mapped to an SMTP
reply, or the SMTP-only smtp_reply and smtp_drop), and a key seen before is accepted and
not delivered again, as a receiver honouring Message-ID would.
"""

from __future__ import annotations

import asyncio
import email
import email.errors
import email.policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.message_ids import key_from_message_id
from provider.app import DUPLICATE, FAILED, Arrival, Behaviour, ProviderState

NO_MESSAGE_ID = "550 5.6.0 a Message-ID made from the idempotency key is required"
TRANSIENT_FAILURE = "451 4.3.0 injected failure"
NO_SUCH_USER = "550 5.1.1 injected failure: no such user"
PERMANENT_FAILURE = "554 5.7.1 injected failure: rejected"
DUPLICATE_REPLY = "250 2.0.0 duplicate, not delivered again"
SENT_REPLY = "250 2.0.0 OK"
# Returned after the connection is closed: aiosmtpd's push() finds the transport closing,
# yields, and the handler task is cancelled by connection_lost() before anything is sent.
DROPPED_REPLY = "421 4.3.0 connection dropped"
# What the email package raises on a header it cannot parse.
_UNREADABLE = (email.errors.MessageError, IndexError, ValueError, TypeError, LookupError)


def start_server(state: ProviderState, host: str, port: int) -> Controller:
    """A running SMTP server on `host`:`port` whose sends go to `state`."""
    controller = Controller(SmtpHandler(state), hostname=host, port=port)
    controller.start()
    return controller


def stop_server(controller: Controller) -> None:
    """Stop `controller`'s SMTP server, unless it has stopped already."""
    if not controller.loop.is_closed():
        controller.stop(no_assert=True)


class SmtpHandler:
    """aiosmtpd handler: decides each message like a POST /send-email, on shared state."""

    def __init__(self, state: ProviderState) -> None:
        self.state = state

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """The reply to one message (the provider's decision, mapped to SMTP)."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        key = _key_of(message)
        seen = {"channel": "smtp", "idempotency_key": key, "email": envelope.rcpt_tos[0]}
        if key is None:
            self.state.record_refused(seen)
            return NO_MESSAGE_ID
        arrival = self.state.arrive(seen, _content(message, envelope))
        if arrival.behaviour.delay_ms:
            await asyncio.sleep(arrival.behaviour.delay_ms / 1000)
        return _reply(arrival, server)


def _reply(arrival: Arrival, server: SMTP) -> str:
    """The SMTP reply to a decided send; a drop closes the connection first."""
    if arrival.outcome == FAILED:
        if arrival.behaviour.smtp_drop:
            server.transport.close()
            return DROPPED_REPLY
        return injected_reply(arrival.behaviour)
    if arrival.outcome == DUPLICATE:
        return DUPLICATE_REPLY
    return SENT_REPLY


def injected_reply(behaviour: Behaviour) -> str:
    """The SMTP reply standing for an injected failure: smtp_reply if set, else
    fail_status mapped (a 4xx other than 429 is permanent: no such user, or rejected;
    the rest transient)."""
    if behaviour.smtp_reply:
        return behaviour.smtp_reply
    status = behaviour.fail_status
    if 400 <= status < 500 and status != 429:
        return NO_SUCH_USER if behaviour.no_such_recipient else PERMANENT_FAILURE
    return TRANSIENT_FAILURE


def _header(message: EmailMessage, name: str) -> str | None:
    """Header `name`'s value as text, None when absent or unreadable."""
    try:
        value = message.get(name)
    except _UNREADABLE:
        return None
    # A long value is folded onto a continuation line; the fold is not part of it.
    return None if value is None else str(value).strip()


def _headers(message: EmailMessage) -> dict[str, str]:
    """Every header by name (a repeated name keeps its last value); unreadable ones raw."""
    headers = {}
    for name, raw in message.raw_items():
        try:
            headers[name] = str(message.policy.header_fetch_parse(name, raw)).strip()
        except _UNREADABLE:
            headers[name] = raw.strip()
    return headers


def _key_of(message: EmailMessage) -> str | None:
    """The idempotency key the Message-ID carries, None without a readable one."""
    message_id = _header(message, "Message-ID")
    return None if message_id is None else key_from_message_id(message_id)


def _part_text(message: EmailMessage, subtype: str) -> str | None:
    """The text of the message's text/`subtype` body part, with LF line ends, or None."""
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    return part.get_content().replace("\r\n", "\n")


def _unsubscribe_url(message: EmailMessage) -> str | None:
    """The link of a List-Unsubscribe header (`<https://…>`), if the message has one."""
    header = _header(message, "List-Unsubscribe")
    if not header or not (header.startswith("<") and header.endswith(">")):
        return None
    return header[1:-1]


def _content(message: EmailMessage, envelope: Envelope) -> dict:
    """What a delivery of `message` records besides its channel, key and recipient."""
    text, html = _part_text(message, "plain"), _part_text(message, "html")
    return {
        "message": None if text is None else text.removesuffix("\n"),
        "subject": _header(message, "Subject"),
        "html": None if html is None else html.removesuffix("\n"),
        "unsubscribe_url": _unsubscribe_url(message),
        "message_id": _header(message, "Message-ID"),
        "mail_from": envelope.mail_from,
        "headers": _headers(message),
    }
