"""marshmallow schemas of /suppressions and /webhooks/provider."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from api.paging import Cursor, aware_datetime
from api.schemas import AFTER, PagedArgsSchema
from repositories.suppressions import REASONS

EMAIL_LENGTH = validate.Length(max=254)


def email_text(text: str) -> str:
    """An email as a cursor carries it."""
    if not text or len(text) > 254:
        raise ValueError(text)
    return text


class SuppressionListArgsSchema(PagedArgsSchema):
    """Filters of GET /suppressions."""

    reason = fields.String(validate=validate.OneOf(REASONS))
    after = Cursor(aware_datetime, email_text, metadata={"description": AFTER})


class SuppressionInputSchema(Schema):
    """An address to suppress by hand."""

    class Meta:
        unknown = RAISE

    email = fields.Email(required=True, validate=EMAIL_LENGTH)
    reason = fields.String(
        load_default="manual",
        validate=validate.OneOf(REASONS),
        metadata={"description": "Why; `manual` when not given"},
    )
    detail = fields.String(validate=validate.Length(max=500), allow_none=True)


class SuppressionSchema(Schema):
    """An address on the suppression list."""

    email = fields.String()
    reason = fields.String(metadata={"enum": list(REASONS)})
    source = fields.String(metadata={"enum": ["api", "channel", "webhook"]})
    detail = fields.String(allow_none=True)
    created_at = fields.DateTime()


class ProviderEventSchema(Schema):
    """One event of the provider's webhook."""

    class Meta:
        unknown = EXCLUDE  # providers add fields; the ones below are what we read

    id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    type = fields.String(
        required=True, validate=validate.OneOf(["bounce", "complaint", "delivered"])
    )
    bounce_type = fields.String(validate=validate.OneOf(["hard", "soft"]), allow_none=True)
    email = fields.Email(required=True, validate=EMAIL_LENGTH)
    idempotency_key = fields.String(validate=validate.Length(max=255), allow_none=True)
    at = fields.AwareDateTime(required=True)

    @validates_schema
    def bounces_say_which(self, data: dict, **kwargs) -> None:
        """A bounce is hard or soft; other events have no bounce_type."""
        if data.get("type") == "bounce" and not data.get("bounce_type"):
            raise ValidationError({"bounce_type": ["a bounce is hard or soft"]})


class WebhookAnswerSchema(Schema):
    accepted = fields.Integer(metadata={"description": "New events, applied"})
    duplicates = fields.Integer(metadata={"description": "Event ids seen before: ignored"})
