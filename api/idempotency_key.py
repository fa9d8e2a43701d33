"""The Idempotency-Key request header: its OpenAPI declaration and its validation.

Shared by the idempotent writes (POST /users, POST /users/import); the store and its
semantics are users.idempotent_requests.
"""

from __future__ import annotations

import re

from flask import request
from flask_smorest import abort

# The IETF Idempotency-Key draft makes the key a structured-field string: printable
# ASCII. Anything else (a NUL, which PostgreSQL cannot store in text, control
# characters, non-ASCII) is refused by name rather than stored.
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")

PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[\\x20-\\x7e]+$",
    },
    "description": "Repeat a request safely: the same key and body replay the "
    "first response (header Idempotent-Replayed: true); another body is 422; "
    "a repeat while the first is running is 409.",
}


def from_request() -> str | None:
    """The request's Idempotency-Key, or None without one; 422 naming it when invalid."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        abort(
            422,
            errors={
                "headers": {"Idempotency-Key": ["must be 1 to 255 printable ASCII characters"]}
            },
            message="The Idempotency-Key header is invalid.",
        )
    return key
