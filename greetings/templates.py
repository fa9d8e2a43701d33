"""The use cases behind /templates: list, read, store, remove and preview templates.

A template is named by its occasion (the message type, any case) and locale (a BCP 47
tag or `default`). Every occasion has a `default` template: the stored one, else the
built-in wording of the occasion registry. Each function joins its caller's
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from domain import locales
from domain.occasions import OCCASIONS, Occasion, UnknownOccasion, next_occasion_date
from errors import InvalidField, OccasionNotFound, TemplateNotFound, TemplateRefused
from greetings.rendering import (
    Rendered,
    Template,
    TemplateProblem,
    built_in,
    check,
    render,
    variables_for,
)
from repositories import templates as stored_templates
from repositories import users


def occasion_named(name: str) -> Occasion:
    """The occasion a path names, case-insensitively (`birthday` is BIRTHDAY)."""
    try:
        return OCCASIONS.by_type(name.upper())
    except UnknownOccasion:
        raise OccasionNotFound(name) from None


def locale_named(tag: str) -> str:
    """A path's locale in its one spelling; InvalidField naming `locale` otherwise."""
    try:
        return locales.canonical(tag)
    except locales.InvalidLocale as error:
        raise InvalidField(str(error), field="locale", location="path") from None


def _resource(occasion: Occasion, locale: str, template: Template, row: dict | None) -> dict:
    return {
        "occasion": occasion.message_type,
        "locale": locale,
        "subject": template.subject,
        "text": template.text,
        "html": template.html,
        "built_in": row is None,
        "created_at": row["created_at"] if row else None,
        "updated_at": row["updated_at"] if row else None,
    }


def _from_row(row: dict) -> Template:
    return Template(row["subject"], row["body_text"], row["body_html"])


def list_templates(conn: psycopg.Connection) -> list[dict]:
    """Every stored template, and the built-in `default` of each occasion without one."""
    rows = stored_templates.list_templates(conn)
    stored_defaults = {row["message_type"] for row in rows if row["locale"] == locales.DEFAULT}
    listed = [
        _resource(OCCASIONS.by_type(row["message_type"]), row["locale"], _from_row(row), row)
        for row in rows
        if row["message_type"] in OCCASIONS.types
    ]
    for occasion in OCCASIONS:
        if occasion.message_type not in stored_defaults:
            listed.append(_resource(occasion, locales.DEFAULT, built_in(occasion), None))
    return sorted(
        listed, key=lambda item: (item["occasion"], item["locale"] != "default", item["locale"])
    )


def _effective(
    conn: psycopg.Connection, occasion: Occasion, locale: str
) -> tuple[Template, dict | None]:
    row = stored_templates.get_template(conn, occasion.message_type, locale)
    if row is not None:
        return _from_row(row), row
    if locale == locales.DEFAULT:
        return built_in(occasion), None
    raise TemplateNotFound(occasion.message_type, locale)


def get_template(conn: psycopg.Connection, occasion_name: str, tag: str) -> dict:
    """The template stored for the occasion and locale (`default`: stored or built-in)."""
    occasion, locale = occasion_named(occasion_name), locale_named(tag)
    template, row = _effective(conn, occasion, locale)
    return _resource(occasion, locale, template, row)


def put_template(
    conn: psycopg.Connection, occasion_name: str, tag: str, body: dict[str, Any]
) -> tuple[dict, bool]:
    """Check and store a template; (the template, whether it was created)."""
    occasion, locale = occasion_named(occasion_name), locale_named(tag)
    template = Template(body["subject"], body["text"], body.get("html"))
    try:
        check(template)
    except TemplateProblem as problem:
        raise TemplateRefused(problem.field, problem.message, problem.line) from None
    row = stored_templates.put_template(
        conn, occasion.message_type, locale, template.subject, template.text, template.html
    )
    return _resource(occasion, locale, template, row), row["created"]


def delete_template(conn: psycopg.Connection, occasion_name: str, tag: str) -> None:
    """Remove a stored template (a `default` one gives way to the built-in wording)."""
    occasion, locale = occasion_named(occasion_name), locale_named(tag)
    if not stored_templates.delete_template(conn, occasion.message_type, locale):
        raise TemplateNotFound(occasion.message_type, locale)


def preview(
    conn: psycopg.Connection,
    occasion_name: str,
    tag: str,
    user_id: UUID,
    now: datetime,
    unsubscribe_url: str = "",
) -> tuple[Rendered, dict]:
    """The template rendered for a live user's next occasion, without sending anything;
    (the rendering, the variables it used)."""
    occasion, locale = occasion_named(occasion_name), locale_named(tag)
    template, _ = _effective(conn, occasion, locale)
    user = users.get_live(conn, user_id)
    original = user[occasion.date_field]
    if original is None:
        raise InvalidField(
            f"this user has no {occasion.date_field}: nothing to preview", field="user_id"
        )
    local_today = now.astimezone(ZoneInfo(user["timezone"])).date()
    occasion_date = next_occasion_date(original, local_today, occasion.leap_day)
    variables = variables_for(
        user["first_name"],
        user["last_name"],
        occasion_date,
        original,
        user["location_city"],
        user["location_country"],
        unsubscribe_url,
    )
    try:
        return render(template, variables), variables
    except TemplateProblem as problem:
        raise TemplateRefused(problem.field, problem.message, problem.line) from None
