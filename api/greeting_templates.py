"""/templates: the wording of greetings per occasion and locale, and its preview."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask.views import MethodView

from api import resources
from api.paging import Blueprint
from api.resources import current_pool
from api.template_schemas import (
    TEMPLATE_EXAMPLE,
    PreviewInputSchema,
    PreviewSchema,
    TemplateInputSchema,
    TemplateSchema,
)
from db.transactions import transaction
from greetings import templates as templates_service
from recipients import links

blp = Blueprint(
    "templates",
    __name__,
    description="Greetings' wording: a subject, a text and optionally HTML per occasion "
    "(BIRTHDAY, ANNIVERSARY; any case) and locale (a BCP 47 tag such as fr or pt-BR, or "
    "`default`). A greeting uses the template of the closest locale: pt-BR, then pt, then "
    "default; an occasion's `default` is its built-in wording until one is stored. "
    "Templates are Jinja2 in a sandbox: variables first_name, last_name, full_name, "
    "occasion_date, years, city, country, unsubscribe_url; `if`/`else`, `+`/`-`, a list "
    "of filters; no loops. A change reaches every greeting not yet sent.",
)


@blp.route("/templates")
class Templates(MethodView):
    @blp.response(200, TemplateSchema(many=True))
    def get(self):
        """Every stored template, and each occasion's `default` (built-in or stored)."""
        with transaction(current_pool()) as conn:
            return templates_service.list_templates(conn)


@blp.route("/templates/<string:occasion>/<string:locale>")
class TemplateByLocale(MethodView):
    @blp.response(200, TemplateSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, occasion: str, locale: str):
        """The template of an occasion in exactly this locale (`default`: the fallback)."""
        with transaction(current_pool()) as conn:
            return templates_service.get_template(conn, occasion, locale)

    @blp.arguments(TemplateInputSchema, example=TEMPLATE_EXAMPLE)
    @blp.response(200, TemplateSchema)
    @blp.alt_response(201, schema=TemplateSchema, description="Created")
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, body: dict, occasion: str, locale: str):
        """Store a template (201 created, 200 replaced). A template that does not parse,
        uses an unknown variable or a construct outside the language, or renders empty is
        422, naming the field and the line."""
        with transaction(current_pool()) as conn:
            template, created = templates_service.put_template(conn, occasion, locale, body)
        return template, 201 if created else 200

    @blp.response(204)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, occasion: str, locale: str):
        """Remove a stored template: its locale's greetings use the next closest one; a
        removed `default` gives way to the built-in wording."""
        with transaction(current_pool()) as conn:
            templates_service.delete_template(conn, occasion, locale)


@blp.route("/templates/<string:occasion>/<string:locale>/preview")
class TemplatePreview(MethodView):
    @blp.arguments(PreviewInputSchema, example={"user_id": "6f1c0e7e-3b8a-4b8e-9a52-1d1e4c1f0a11"})
    @blp.response(200, PreviewSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict, occasion: str, locale: str):
        """This template rendered for a user's next occasion; nothing is sent."""
        settings = resources.current_settings()
        link = links.link_for(
            settings.unsubscribe_base_url,
            settings.unsubscribe_signing_secret,
            body["user_id"],
            templates_service.occasion_named(occasion).message_type,
        )
        with transaction(current_pool()) as conn:
            rendered, variables = templates_service.preview(
                conn, occasion, locale, body["user_id"], datetime.now(UTC), link
            )
        shown = {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in variables.items()
        }
        return {
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "variables": shown,
        }
