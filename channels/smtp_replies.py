"""What a mail server's reply means for a greeting: the SMTP side of the channel port.

2xx delivered; 4xx "retry later"; 5xx refused, and a refusal of the recipient's address
(enhanced status 5.1.x about the destination, or a bare 550/551/553 to RCPT TO) is
marked as "no such recipient". This module is the only one that knows these codes.
"""

from __future__ import annotations

import re

from domain.delivery_policy import ChannelAnswer, Outcome

# RFC 3463: 5.1.x is "addressing status"; 5.1.7 and 5.1.8 are about the sender.
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_SENDER_ADDRESS_DETAILS = {"7", "8"}
_RECIPIENT_REFUSALS = {550, 551, 553}


def _no_such_recipient(code: int, text: str, stage: str) -> bool:
    enhanced = _ENHANCED.match(text)
    if enhanced:
        klass, subject, detail = enhanced.groups()
        return klass == "5" and subject == "1" and detail not in _SENDER_ADDRESS_DETAILS
    return stage == "rcpt" and code in _RECIPIENT_REFUSALS


def answer_for_reply(code: int, text: str, stage: str) -> ChannelAnswer:
    """The answer a reply `code` with `text` to the `stage` ("mail", "rcpt", "data")
    of a transaction means."""
    detail = f"{code} {text}".strip()
    if 200 <= code < 300:
        return ChannelAnswer(Outcome.DELIVERED, code=code, detail=detail)
    if not 500 <= code < 600:  # 4xx, or a reply that is not SMTP's (smtplib reads it as -1)
        return ChannelAnswer(
            Outcome.RETRY_LATER, reason=f"mail server answered {detail}", code=code, detail=detail
        )
    if _no_such_recipient(code, text, stage):
        return ChannelAnswer(
            Outcome.REFUSED,
            reason=f"no such recipient: mail server answered {detail}",
            code=code,
            detail=detail,
            no_such_recipient=True,
        )
    return ChannelAnswer(
        Outcome.REFUSED, reason=f"mail server refused: {detail}", code=code, detail=detail
    )


def retry_later(reason: str) -> ChannelAnswer:
    """Trouble on the way (timeout, dropped connection, TLS or login failure)."""
    return ChannelAnswer(Outcome.RETRY_LATER, reason=reason)
