"""marshmallow schemas of the HTTP API: what requests may contain, what responses hold."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from api.paging import (
    Cursor,
    aware_datetime,
    bigint_text,
    iso_date,
    refuse_page_with_cursor,
    uuid_text,
)
from domain import locales, statuses
from domain.occasions import OCCASIONS
from users.rules import is_known_timezone, occasion_date_errors

NAME_LENGTH = validate.Length(min=1, max=100)
LOCATION_LENGTH = validate.Length(max=100)
EXTERNAL_ID_LENGTH = validate.Length(min=1, max=255)
USER_EXAMPLE = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "timezone": "Europe/London",
    "birthday_date": "1990-12-10",
    "anniversary_date": None,
    "location_city": "London",
    "location_country": "United Kingdom",
    "locale": "en-GB",
}


# Control and invisible characters: C0/C1 controls, format characters such as the
# zero-width space, and the Unicode line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _no_control_characters(value: str) -> None:
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value):
        raise ValidationError("must not contain control or invisible characters")


def _known_timezone(value: str) -> None:
    if not is_known_timezone(value):
        raise ValidationError(
            f"unknown time zone {value!r}: use an IANA name such as America/New_York, "
            "Asia/Kathmandu or UTC"
        )


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before validation."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class Locale(fields.String):
    """A BCP 47 language tag (`en`, `pt-BR`), kept in its conventional case."""

    def __init__(self, *, allow_default: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {"example": "pt-BR"})
        super().__init__(**kwargs)
        self.allow_default = allow_default

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            tag = locales.canonical(super()._deserialize(value, attr, data, **kwargs).strip())
        except locales.InvalidLocale as error:
            raise ValidationError(str(error)) from None
        if tag == locales.DEFAULT and not self.allow_default:
            raise ValidationError("must be a BCP 47 language tag such as en, fr or pt-BR")
        return tag


def _name(required: bool) -> fields.Field:
    return TrimmedString(
        required=required, validate=[NAME_LENGTH, _no_control_characters], allow_none=False
    )


class UserInputSchema(Schema):
    """The writable fields of a user, all of them (POST and PUT)."""

    class Meta:
        unknown = RAISE

    first_name = _name(required=True)
    last_name = _name(required=True)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    timezone = fields.String(required=True, validate=_known_timezone)
    birthday_date = fields.Date(allow_none=True, load_default=None)
    anniversary_date = fields.Date(allow_none=True, load_default=None)
    location_city = TrimmedString(
        allow_none=True, load_default=None, validate=[LOCATION_LENGTH, _no_control_characters]
    )
    location_country = TrimmedString(
        allow_none=True, load_default=None, validate=[LOCATION_LENGTH, _no_control_characters]
    )
    external_id = TrimmedString(
        allow_none=True,
        load_default=None,
        validate=[EXTERNAL_ID_LENGTH, _no_control_characters],
        metadata={
            "description": "The person's id in your system of record (HR, CRM): unique among"
            " live users; GET /users?external_id= finds them by it",
            "example": "HR-00042",
        },
    )
    locale = Locale(
        allow_none=True,
        load_default=None,
        metadata={
            "description": "The language of the user's greetings (BCP 47); the closest template"
            " is used: pt-BR, then pt, then default. Null: default.",
            "example": "pt-BR",
        },
    )

    @pre_load
    def normalise_email(self, data: Any, **kwargs: Any) -> Any:
        """Compare emails trimmed and lower-cased, as they are stored."""
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data

    @validates_schema
    def check_dates(self, data: dict, partial: Any = None, **kwargs: Any) -> None:
        """At least one occasion; neither before 1900 nor after the user's local today."""
        if partial:
            return
        errors = occasion_date_errors(data, datetime.now(UTC))
        if errors:
            raise ValidationError(errors)

    @post_load
    def empty_location_is_none(self, data: dict, **kwargs: Any) -> dict:
        for field in ("location_city", "location_country"):
            if data.get(field) == "":
                data[field] = None
        return data


class UserPatchSchema(UserInputSchema):
    """Any subset of the writable fields; an explicit null clears an optional one."""

    class Meta:
        unknown = RAISE

    birthday_date = fields.Date(allow_none=True)
    anniversary_date = fields.Date(allow_none=True)
    location_city = TrimmedString(
        allow_none=True, validate=[LOCATION_LENGTH, _no_control_characters]
    )
    location_country = TrimmedString(
        allow_none=True, validate=[LOCATION_LENGTH, _no_control_characters]
    )
    locale = Locale(allow_none=True)
    external_id = TrimmedString(
        allow_none=True, validate=[EXTERNAL_ID_LENGTH, _no_control_characters]
    )


class SubscriptionSchema(Schema):
    """Which occasions to opt out of, or back in to; none given: all of them."""

    class Meta:
        unknown = RAISE

    occasions = fields.List(
        fields.String(validate=validate.OneOf(OCCASIONS.types)),
        validate=validate.Length(min=1),
        metadata={
            "description": "Occasions by message type (any case)",
            "example": ["ANNIVERSARY"],
        },
    )

    @pre_load
    def upper_case_occasions(self, data: Any, **kwargs: Any) -> Any:
        """`anniversary` names ANNIVERSARY, as in /templates."""
        if isinstance(data, dict) and isinstance(data.get("occasions"), list):
            upper = [o.upper() if isinstance(o, str) else o for o in data["occasions"]]
            data = {**data, "occasions": upper}
        return data


class UserSchema(Schema):
    """A user as the API returns it."""

    id = fields.UUID(dump_only=True)
    external_id = fields.String(allow_none=True)
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String()
    timezone = fields.String()
    birthday_date = fields.Date(allow_none=True)
    anniversary_date = fields.Date(allow_none=True)
    location_city = fields.String(allow_none=True)
    location_country = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    unsubscribed = fields.List(
        fields.String(),
        metadata={"description": "The occasions this person opted out of", "example": []},
    )
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


AFTER = "Start right after this cursor: the X-Next-Cursor of a previous page"


class PagedArgsSchema(Schema):
    """Arguments of a paginated list beside `page` and `page_size` (read by the paginator)."""

    class Meta:
        unknown = EXCLUDE

    @validates_schema(pass_original=True)
    def one_way_of_paging(self, data: dict, original: Any, **kwargs: Any) -> None:
        """`after` or `page`, not both."""
        refuse_page_with_cursor(data, original)


class UserListArgsSchema(PagedArgsSchema):
    """Filters of GET /users."""

    q = TrimmedString(
        validate=[validate.Length(min=3, max=100), _no_control_characters],
        metadata={"description": "Case-insensitive search in names and email (3+ characters)"},
    )
    timezone = fields.String(validate=_known_timezone, metadata={"example": "Asia/Kathmandu"})
    external_id = TrimmedString(
        validate=[EXTERNAL_ID_LENGTH, _no_control_characters],
        metadata={"description": "The live user with this id of the system of record"},
    )
    after = Cursor(aware_datetime, uuid_text, metadata={"description": AFTER})


# The state machine's names (domain/statuses.py), in its order.
MESSAGE_STATUSES = tuple(status.value for status in statuses.ALL)


class MessageSchema(Schema):
    """A greeting as the API returns it."""

    id = fields.Integer()
    user_id = fields.UUID()
    message_type = fields.String(metadata={"enum": list(OCCASIONS.types)})
    occasion_date = fields.Date(metadata={"description": "The user's local date of the occasion"})
    message_content = fields.String(
        metadata={
            "description": "Once SENT, exactly the text sent; before, the occasion's built-in"
            " wording (the template is rendered at the send: see /templates)"
        }
    )
    subject = fields.String(
        allow_none=True, metadata={"description": "The subject sent; null until SENT"}
    )
    scheduled_send_time = fields.DateTime()
    actual_send_time = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "When the provider reported it delivered (its webhook)"},
    )
    status = fields.String(metadata={"enum": list(MESSAGE_STATUSES)})
    retry_count = fields.Integer()
    api_response_code = fields.Integer(allow_none=True)
    error_message = fields.String(allow_none=True)
    idempotency_key = fields.String()


class UserMessageListArgsSchema(PagedArgsSchema):
    """Arguments of GET /users/<id>/messages."""

    after = Cursor(iso_date, bigint_text, metadata={"description": AFTER})


class MessageListArgsSchema(UserMessageListArgsSchema):
    """Filters of GET /messages."""

    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES))
    type = fields.String(data_key="type", validate=validate.OneOf(OCCASIONS.types))
    date_from = fields.Date(
        data_key="from", metadata={"description": "Earliest occasion date (inclusive)"}
    )
    date_to = fields.Date(data_key="to", metadata={"description": "Latest occasion date"})

    @validates_schema
    def check_range(self, data: dict, **kwargs: Any) -> None:
        """`from` may not be after `to`."""
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError({"from": ["must not be after 'to'"]})
