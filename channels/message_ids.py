"""A greeting's Message-ID, derived from its idempotency key and back.

Every attempt of one greeting carries the same Message-ID, so a receiver (or an
operator reading a mailbox) can tell a resend from a new message. The key
(`<user id>:<occasion>:<date>`) has characters a Message-ID may not hold (`:`), so
each character outside letters, digits, `-` and `_` is written as `=` and its code
point in hex, between `=`s: `a:b` -> `a=3a=b`. The result is a dot-atom, as RFC 5322
asks of a Message-ID's left part, and reads back exactly.
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPED = re.compile(r"=([0-9a-f]+)=")


def _escape(key: str) -> str:
    return "".join(c if _PLAIN.fullmatch(c) else f"={ord(c):x}=" for c in key)


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID header value (with its angle brackets) for the greeting `key`."""
    return f"<{_escape(key)}@{domain}>"


def key_from_message_id(message_id: str) -> str | None:
    """The idempotency key a Message-ID made by `message_id_for` carries, else None."""
    value = message_id.strip()
    if not (value.startswith("<") and value.endswith(">")) or "@" not in value:
        return None
    left = value[1:-1].rpartition("@")[0]
    if not left or _escape(_ESCAPED.sub("", left)) != _ESCAPED.sub("", left):
        return None
    try:
        return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), left)
    except (ValueError, OverflowError):
        return None
