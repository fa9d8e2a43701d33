"""POST /users/import: users from a system of record, as CSV or NDJSON, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flask import request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields

from api import resources
from api.paging import Blueprint
from api.resources import current_pool
from db.transactions import transaction
from imports import rows as import_rows
from imports.sync import ImportResult, import_users

blp = Blueprint(
    "user_import",
    __name__,
    description="Bulk sync from a system of record (docs/api.md, *Import*).",
)
CHUNK_BYTES = 64 * 1024
READERS = {"text/csv": import_rows.csv_rows, "application/x-ndjson": import_rows.ndjson_rows}
RULE = "/users/import"  # its body is CSV or NDJSON, not JSON (api/guards.py)


class ImportArgsSchema(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Check and count only"})
    delete_missing = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Full sync: delete live users whose external_id is not in the file"
        },
    )


class ImportErrorSchema(Schema):
    row = fields.Integer()
    field = fields.String()
    message = fields.String()


class ImportResultSchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    deleted = fields.Integer()
    error_count = fields.Integer(metadata={"description": "Rows refused, in all"})
    errors = fields.List(
        fields.Nested(ImportErrorSchema), metadata={"description": "The first 1,000"}
    )
    dry_run = fields.Boolean()


def _chunks() -> Iterator[bytes]:
    while chunk := request.stream.read(CHUNK_BYTES):
        yield chunk


def _body_problem(problem: import_rows.BodyProblem) -> None:
    message = f"row {problem.row}, {problem.field}: {problem.message}"
    abort(
        422,
        message=message,
        errors={"body": {problem.field: [f"row {problem.row}: {problem.message}"]}},
    )


@blp.route(RULE)
class UserImport(MethodView):
    @blp.arguments(ImportArgsSchema, location="query")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "external_id,first_name,last_name,email,timezone,birthday_date\n"
                    "HR-1,Ada,Lovelace,ada@example.com,Europe/London,1990-12-10\n",
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    )
    @blp.response(200, ImportResultSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, args):
        """Create, update (by external_id, else email) and optionally delete users from a
        CSV (header row) or NDJSON body, streamed; invalid rows are reported, valid ones
        applied, all in one transaction."""
        settings = resources.current_settings()
        reader = READERS.get(request.mimetype)
        if reader is None:
            message = "Send text/csv or application/x-ndjson."
            abort(415, message=message, errors={"headers": {"Content-Type": [message]}})
        request.max_content_length = settings.import_max_bytes
        rows = reader(_chunks(), settings.import_max_rows)
        try:
            with transaction(current_pool()) as conn:
                result = import_users(
                    conn,
                    rows,
                    datetime.now(UTC),
                    settings.send_time,
                    dry_run=args["dry_run"],
                    delete_missing=args["delete_missing"],
                )
        except import_rows.BodyProblem as problem:
            _body_problem(problem)
        return _answer(result)


def _answer(result: ImportResult) -> dict:
    return {
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "deleted": result.deleted,
        "error_count": result.error_count,
        "errors": result.errors,
        "dry_run": result.dry_run,
    }
