"""marshmallow schemas of /templates: a template as written, as stored, and a preview."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from greetings.rendering import MAX_SOURCE_LENGTH, VARIABLES

TEMPLATE_EXAMPLE = {
    "subject": "Joyeux anniversaire, {{ first_name }} !",
    "text": "Bonjour {{ first_name }},\n\n"
    "{% if years %}{{ years }} ans aujourd'hui !{% else %}Joyeux anniversaire !{% endif %}",
    "html": "<p>Bonjour {{ first_name }},</p><p>Joyeux anniversaire !</p>",
}
_VARIABLES = ", ".join(VARIABLES)
_SOURCE_LENGTH = validate.Length(min=1, max=MAX_SOURCE_LENGTH)


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters")


def _source(description: str, **kwargs) -> fields.String:
    return fields.String(
        validate=[_SOURCE_LENGTH, _no_nul], metadata={"description": description}, **kwargs
    )


class TemplateInputSchema(Schema):
    """A template as written: Jinja2 in a sandbox, strict variables."""

    class Meta:
        unknown = RAISE

    subject = _source(f"One line once rendered. Variables: {_VARIABLES}.", required=True)
    text = _source("The plain-text body.", required=True)
    html = _source("An HTML body (autoescaped), sent beside the text.", allow_none=True)


class TemplateSchema(Schema):
    """A template as stored, or the built-in wording of an occasion's `default`."""

    occasion = fields.String(metadata={"example": "BIRTHDAY"})
    locale = fields.String(metadata={"example": "fr"})
    subject = fields.String()
    text = fields.String()
    html = fields.String(allow_none=True)
    built_in = fields.Boolean(
        metadata={"description": "True: the occasion's built-in wording, nothing stored"}
    )
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class PreviewInputSchema(Schema):
    """Whose greeting to render."""

    class Meta:
        unknown = RAISE

    user_id = fields.UUID(required=True)


class PreviewSchema(Schema):
    """A template rendered for one user's next occasion; nothing is sent."""

    subject = fields.String()
    text = fields.String()
    html = fields.String(allow_none=True)
    variables = fields.Dict(metadata={"description": "What the template saw: " + _VARIABLES})
