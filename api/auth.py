"""Authentication, its one home: bearer tokens, the status page's sessions, and what
each kind of token may do.

With any of API_TOKEN, API_TOKENS or API_READ_TOKENS set, every endpoint that returns
or changes users or messages needs `Authorization: Bearer <token>`: a read token (or a
read-write one) for GET, HEAD and OPTIONS, a read-write token for everything else.
Unknown routes are closed as well, so a new endpoint is protected before anyone
thinks about it. Only liveness, readiness (statuses only) and the docs stay open.

/metrics is aggregate counts, no personal data, but still the service's inner state:
it needs a token as soon as any token is configured, and METRICS_TOKENS gives the
scraper one that opens /metrics and nothing else.

Tokens are compared in constant time, as bytes (a header or form value may hold any
character), and never logged; a refused request is logged with its request id and the
client's address only. A refusal names the `Authorization` header in its errors.

The status page (api/status.py) asks the same rules through `request_scope`,
`may_read` and `may_write`: a bearer token, or the session cookie its login form sets
from a typed token; it only renders what they decide.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Any

from apispec import BasePlugin
from flask import g, request
from flask_smorest import abort

from api import resources
from config import Settings

log = logging.getLogger(__name__)

# Blueprints that check access themselves: the /status pages accept the bearer
# header or the signed session cookie their login form sets (api/status.py); the
# one-click unsubscribe pages take the signed token in their URL (api/unsubscribe.py).
SELF_GUARDED_BLUEPRINTS = frozenset({"status", "unsubscribe"})

# Rules as Flask writes them; the docs paths follow OPENAPI_* in app.py.
# /webhooks/provider carries the provider's signature instead (api/webhooks.py).
OPEN_RULES = frozenset(
    {
        "/health/live",
        "/health",
        "/openapi.json",
        "/docs",
        "/docs/assets/<path:filename>",
        "/webhooks/provider",
    }
)
METRICS_RULE = "/metrics"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE, READ, METRICS = "write", "read", "metrics"
SECURITY_SCHEME = "bearerAuth"
REALM = 'Bearer realm="birthday"'


def secret_bytes(text: str) -> bytes:
    """A secret or a presented value as bytes for `hmac.compare_digest`, whatever it holds.

    compare_digest refuses str holding non-ASCII characters (TypeError), and a request
    may carry any character; surrogatepass encodes even a lone surrogate."""
    return text.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    """Whether `given` is `expected`, compared in constant time."""
    return hmac.compare_digest(secret_bytes(given), secret_bytes(expected))


def token_scope(settings: Settings, given: str) -> str | None:
    """What the presented token allows (write, read or metrics), or None."""
    granted = None
    for scope, tokens in (
        (WRITE, settings.read_write_tokens),
        (READ, settings.api_read_tokens),
        (METRICS, settings.metrics_tokens),
    ):
        for token in tokens:
            # Every token is compared, matched or not: the time taken says nothing.
            if same_secret(given, token) and granted is None:
                granted = scope
    return granted


def accepted_scopes(settings: Settings, rule: str | None, method: str) -> frozenset[str] | None:
    """The scopes that may make this request, or None when it is open to anyone."""
    if rule in OPEN_RULES:
        return None
    if rule == METRICS_RULE:
        if settings.requires_token or settings.metrics_tokens:
            return frozenset({WRITE, READ, METRICS})
        return None
    if not settings.requires_token:
        return None
    if method in READ_METHODS:
        return frozenset({WRITE, READ})
    return frozenset({WRITE})


# --- the status page's sessions ------------------------------------------------------
# /status/login turns a typed token into a cookie `expires.signature`: an expiry and an
# HMAC of it keyed by the token itself, so every API process accepts it without shared
# state and changing the token ends every session. The cookie carries the token's scope.
SESSION_COOKIE = "birthday_status_session"
SESSION_SECONDS = 12 * 3600
# As session_value writes it: ASCII digits (str.isdigit would also take '²', which int()
# refuses) and a SHA-256 hex digest.
_SESSION_SHAPE = re.compile(r"(?P<expires>[0-9]{1,12})\.(?P<signature>[0-9a-f]{64})")


def _session_signature(token: str, expires: int) -> str:
    message = f"status-session:{expires}".encode()
    return hmac.new(secret_bytes(token), message, hashlib.sha256).hexdigest()


def session_value(token: str, now: float) -> str:
    """The session cookie's value for a token typed at `now` (unix seconds)."""
    expires = int(now) + SESSION_SECONDS
    return f"{expires}.{_session_signature(token, expires)}"


def session_scope(settings: Settings, cookie: str, now: float) -> str | None:
    """What a session cookie allows (write or read), or None: unreadable, expired, or
    signed by no token configured now."""
    session = _SESSION_SHAPE.fullmatch(cookie)
    if session is None or int(session["expires"]) < now:
        return None
    expires = int(session["expires"])
    granted = None
    for scope, tokens in ((WRITE, settings.read_write_tokens), (READ, settings.api_read_tokens)):
        for token in tokens:
            signed = same_secret(session["signature"], _session_signature(token, expires))
            if signed and granted is None:
                granted = scope
    return granted


def login_token(settings: Settings, given: str) -> str | None:
    """The read or read-write token `given` is, if it is one (a metrics token is not)."""
    if token_scope(settings, given) in (WRITE, READ):
        return given
    return None


def request_scope(settings: Settings) -> str | None:
    """What this request's bearer token, else its session cookie, allows."""
    given = _presented_token()
    if given:
        scope = token_scope(settings, given)
        if scope is not None:
            return scope
    return session_scope(settings, request.cookies.get(SESSION_COOKIE, ""), time.time())


def may_read(settings: Settings, scope: str | None) -> bool:
    """Whether `scope` may read users, greetings and the status page."""
    return not settings.requires_token or scope in (WRITE, READ)


def may_write(settings: Settings, scope: str | None) -> bool:
    """Whether `scope` may change anything (a greeting's Retry included)."""
    return not settings.requires_token or scope == WRITE


def _presented_token() -> str:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def _refuse(code: int, message: str) -> None:
    # The request id and the client's address only: never the header or the token.
    extra = {"request_id": g.get("request_id"), "client_address": request.remote_addr}
    log.warning("request refused with %s", code, extra=extra)
    headers = {"WWW-Authenticate": REALM} if code == 401 else None
    abort(code, message=message, errors={"headers": {"Authorization": [message]}}, headers=headers)


def require_token() -> None:
    """Refuse a request whose token is missing (401) or does not allow it (403)."""
    settings = resources.current_settings()
    given = _presented_token()
    g.token_scope = token_scope(settings, given) if given else None
    if request.blueprint in SELF_GUARDED_BLUEPRINTS:
        return  # the /status pages check tokens themselves (bearer or signed cookie)
    rule = request.url_rule.rule if request.url_rule else None
    accepted = accepted_scopes(settings, rule, request.method)
    if accepted is None:
        return
    if g.token_scope is None:
        _refuse(401, "A valid bearer token is required for this request.")
    if g.token_scope not in accepted:
        _refuse(403, "This token does not allow this request.")


def may_see_details() -> bool:
    """Whether this caller may see more than statuses (no tokens set, or a read token)."""
    settings = resources.current_settings()
    return not settings.requires_token or g.get("token_scope") in {WRITE, READ}


def warn_when_open(settings: Settings) -> None:
    """Say at start-up when users and messages are served without a token."""
    if not settings.requires_token:
        log.warning(
            "no API_TOKENS, API_TOKEN or API_READ_TOKENS set: users and messages are "
            "served to anyone who can reach the API"
        )


class SecurityDocPlugin(BasePlugin):
    """Declares the bearer scheme in the OpenAPI document, from the same rules as above."""

    def init_spec(self, spec: Any) -> None:
        """Register the scheme and require it everywhere unless an operation says not."""
        super().init_spec(spec)
        spec.components.security_scheme(
            SECURITY_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A token of API_TOKENS or API_TOKEN (read and write), "
                "API_READ_TOKENS (read only) or METRICS_TOKENS (/metrics only).",
            },
        )
        spec.options.setdefault("security", [{SECURITY_SCHEME: []}])

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        """Open operations need nothing; the others may answer 401 and 403."""
        rule = kwargs.get("rule")
        is_open = rule is not None and rule.rule in OPEN_RULES
        for operation in (operations or {}).values():
            if is_open:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            for code, name in ((401, "UNAUTHORIZED"), (403, "FORBIDDEN")):
                if code not in responses and str(code) not in responses:
                    responses[str(code)] = name
