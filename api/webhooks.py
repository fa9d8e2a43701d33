"""POST /webhooks/provider: what the provider reports about sent greetings.

No bearer token: the provider signs each request (recipients/webhook_signatures.py), and
a request whose signature or timestamp does not hold is a 401 that changes nothing. The
body is checked whole before any event is applied; each event id is applied once.
"""

from __future__ import annotations

import json
import time

from flask import request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError

from api import resources
from api.paging import Blueprint
from api.resources import current_pool
from api.suppression_schemas import ProviderEventSchema, WebhookAnswerSchema
from db.transactions import transaction
from recipients import webhook_signatures
from recipients.provider_events import ProviderEvent, record_events

blp = Blueprint(
    "webhooks",
    __name__,
    description="Events from the email provider. Body: one event or a JSON array of them, "
    '`{"id", "type": "bounce"|"complaint"|"delivered", "bounce_type": "hard"|"soft" '
    '(bounces), "email", "idempotency_key" (when known), "at" (ISO 8601)}`. Headers: '
    "`Webhook-Timestamp: <unix seconds>` and `Webhook-Signature: v1=<hex HMAC-SHA256 of "
    '"<timestamp>.<raw body>" with WEBHOOK_SECRET>` (several v1= values, space-separated, '
    "while a secret is rotated). A bad or missing signature, or a timestamp more than 5 "
    "minutes away, is 401. Each event id is applied once; a replay answers 200 and changes "
    "nothing. A hard bounce or a complaint suppresses the address; a soft bounce is "
    "recorded only; `delivered` records when the greeting reached the mailbox.",
)
MAX_EVENTS = 1000
_SIGNATURE_HEADERS = [
    {
        "in": "header",
        "name": "Webhook-Timestamp",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "Unix time in seconds when the provider signed the request",
    },
    {
        "in": "header",
        "name": "Webhook-Signature",
        "required": True,
        "schema": {"type": "string"},
        "description": 'v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">, space-separated',
    },
]
_EXAMPLE = {
    "id": "evt_0c1f",
    "type": "bounce",
    "bounce_type": "hard",
    "email": "ada@example.com",
    "idempotency_key": "6f1c0e7e-3b8a-4b8e-9a52-1d1e4c1f0a11:BIRTHDAY:2026-12-10",
    "at": "2026-12-10T09:00:03+00:00",
}


def _refuse(message: str) -> None:
    abort(401, message=message, errors={"headers": {"Webhook-Signature": [message]}})


def _events(body: bytes) -> list[ProviderEvent]:
    """The events of a genuine body; a 422 naming what is wrong otherwise."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        abort(400, message="The body is not JSON.", errors={"json": ["not JSON"]})
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items or len(items) > MAX_EVENTS:
        message = f"send 1 to {MAX_EVENTS} events"
        abort(422, message=message, errors={"json": {"_schema": [message]}})
    try:
        loaded = ProviderEventSchema(many=True).load(items)
    except ValidationError as error:
        abort(422, message="The events are invalid: see errors.", errors={"json": error.messages})
    return [ProviderEvent(**event) for event in loaded]


@blp.route("/webhooks/provider")
class ProviderWebhook(MethodView):
    @blp.doc(
        parameters=_SIGNATURE_HEADERS,
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": ProviderEventSchema, "example": _EXAMPLE}},
        },
    )
    @blp.response(200, WebhookAnswerSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self):
        """Provider events, signed: bounces, complaints, deliveries."""
        body = request.get_data(cache=True)
        settings = resources.current_settings()
        problem = webhook_signatures.problem(
            settings.webhook_secrets,
            request.headers.get("Webhook-Timestamp"),
            request.headers.get("Webhook-Signature"),
            body,
            time.time(),
        )
        if problem is not None:
            _refuse(problem)
        events = _events(body)
        with transaction(current_pool()) as conn:
            outcome = record_events(conn, events)
        return {"accepted": outcome.accepted, "duplicates": outcome.duplicates}
