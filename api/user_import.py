"""POST /users/import: users from a system of record, as CSV or NDJSON, streamed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import psycopg
from flask import request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields

from api import idempotency_key, resources
from api.paging import Blueprint
from api.resources import current_pool
from config import Settings
from db.transactions import transaction
from imports import rows as import_rows
from imports.sync import ImportResult, import_users
from users import idempotent_requests as idempotency

blp = Blueprint(
    "user_import",
    __name__,
    description="Bulk sync from a system of record (docs/api.md, *Import*).",
)
CHUNK_BYTES = 64 * 1024
READERS = {"text/csv": import_rows.csv_rows, "application/x-ndjson": import_rows.ndjson_rows}
RULE = "/users/import"  # its body is CSV or NDJSON, not JSON (api/guards.py)
SCOPE = "POST /users/import"  # of its Idempotency-Keys


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


class _HashedBody:
    """The request body in CHUNK_BYTES chunks, each added to a SHA-256 as it is read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._sha256 = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._stream.read(CHUNK_BYTES):
            self._sha256.update(chunk)
            yield chunk

    def hexdigest(self) -> str:
        """The digest of the whole body: what is still unread is read (and digested) first."""
        for _ in self:
            pass
        return self._sha256.hexdigest()


def _fingerprint(args: dict, body: _HashedBody) -> idempotency.StreamedFingerprint:
    """Two imports are the same request when query, content type and body bytes are."""
    parts = {"query": dict(args), "content_type": request.mimetype}
    return idempotency.StreamedFingerprint(
        pending="pending:" + idempotency.fingerprint("POST", RULE, parts),
        final=lambda: idempotency.fingerprint(
            "POST", RULE, {**parts, "body_sha256": body.hexdigest()}
        ),
    )


def _body_problem(problem: import_rows.BodyProblem) -> None:
    message = f"row {problem.row}, {problem.field}: {problem.message}"
    abort(
        422,
        message=message,
        errors={"body": {problem.field: [f"row {problem.row}: {problem.message}"]}},
    )


# On the path, not in @blp.doc: a manual `parameters` list would replace the query
# parameters @blp.arguments documents. The import is the path's only operation.
@blp.route(RULE, parameters=[idempotency_key.PARAMETER])
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
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, args):
        """Create, update (by external_id, else email) and optionally delete users from a
        CSV (header row) or NDJSON body, streamed; invalid rows are reported, valid ones
        applied, all in one transaction.

        With an Idempotency-Key, the same query, content type and body bytes replay the
        first answer (dry runs too); a body refused as a whole frees the key."""
        settings = resources.current_settings()
        reader = READERS.get(request.mimetype)
        if reader is None:
            message = "Send text/csv or application/x-ndjson."
            abort(415, message=message, errors={"headers": {"Content-Type": [message]}})
        key = idempotency_key.from_request()
        request.max_content_length = settings.import_max_bytes
        body = _HashedBody(request.stream)
        work = _importer(reader, body, args, settings)
        try:
            answer = _run(work, key, _fingerprint(args, body), settings)
        except import_rows.BodyProblem as problem:
            _body_problem(problem)
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        return answer.body, answer.status, headers


def _importer(
    reader: Callable[[Iterable[bytes], int], Iterator[tuple[str | None, ...]]],
    body: _HashedBody,
    args: dict,
    settings: Settings,
) -> Callable[[psycopg.Connection], tuple[int, dict]]:
    """The import as the work of one transaction: (200, its answer)."""

    def work(conn: psycopg.Connection) -> tuple[int, dict]:
        result = import_users(
            conn,
            reader(body, settings.import_max_rows),
            datetime.now(UTC),
            settings.send_time,
            dry_run=args["dry_run"],
            delete_missing=args["delete_missing"],
            timeout=settings.import_timeout,
        )
        return 200, _answer(result)

    return work


def _run(
    work: Callable[[psycopg.Connection], tuple[int, Any]],
    key: str | None,
    request_fingerprint: idempotency.StreamedFingerprint,
    settings: Settings,
) -> idempotency.StoredResponse:
    """The import in one transaction; with a key, once per key (a repeat gets its answer).

    An import may run for long (each of its statements up to IMPORT_TIMEOUT): its claim
    on the key is taken over by a repeat only once it is that much older than any other
    request's may be."""
    if key is None:
        with transaction(current_pool()) as conn:
            return idempotency.StoredResponse(*work(conn), replayed=False)
    return idempotency.run_once(
        current_pool(),
        SCOPE,
        key,
        request_fingerprint,
        work,
        settings.idempotency_stale_after + settings.import_timeout,
        settings.idempotency_key_retention,
    )


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
