"""Signed one-click unsubscribe links (RFC 8058): `PUBLIC_BASE_URL/unsubscribe/<token>`.

The token names a user and an occasion and is signed with UNSUBSCRIBE_SECRET
(itsdangerous, HMAC-SHA1 under a salt of its own); anyone holding the link may opt that
user out of that occasion, and no one can make a link for another user or occasion.
Links do not expire: a greeting read a year later must still unsubscribe its reader.
Changing UNSUBSCRIBE_SECRET turns every link sent before into a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from itsdangerous import BadData, URLSafeSerializer

_SALT = "birthday.unsubscribe.v1"


@dataclass(frozen=True)
class OptOut:
    """What a link asks: opt this user out of this occasion."""

    user_id: UUID
    occasion: str


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


def token_for(secret: str, user_id: UUID, occasion: str) -> str:
    """The signed token of (user, occasion)."""
    return _serializer(secret).dumps([str(user_id), occasion])


def link_for(base_url: str, secret: str, user_id: UUID, occasion: str) -> str:
    """The one-click link of (user, occasion) under `base_url`."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token_for(secret, user_id, occasion)}"


def read_token(secret: str, token: str) -> OptOut | None:
    """What a token asks, or None when it is not one this secret signed."""
    if len(token) > 500:
        return None
    try:
        value = _serializer(secret).loads(token)
    except BadData:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        return None
    try:
        return OptOut(UUID(value[0]), value[1])
    except ValueError:
        return None
