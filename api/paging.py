"""Paging of the list endpoints: numbered pages with a bounded count, or cursors.

Every list answers, while more rows follow, with `Link: <…?after=CURSOR…>; rel="next"`
and the same cursor in `X-Next-Cursor`: walking a whole list means following that link
until it is absent. A cursor page starts right after the last row seen, read from an
index, so the millionth row costs what the first does.

What a walk guarantees, exactly: no row is returned twice (the sort key of a row never
changes, and each page starts strictly after the previous one's last key); every row
that matched when the walk began and still matches when the walk reaches its place is
returned exactly once. A row created during the walk may be missed: a user's
`created_at` is its transaction's start, so a user committed after a cursor was handed
out can sort before it, and a greeting planned meanwhile may fall on an earlier page.
Nothing in PostgreSQL is assigned in commit order cheaply enough to key a walk on.

A cursor is decoded into a strict shape (a short URL-safe base64 text holding a JSON list
of strings, each read by its part's parser) and anything else, or `after` beside a `page`
number, is a 400 naming `after`, never a 500.

Numbered pages (`page`, `page_size`) keep working with the `X-Pagination` header. A list
may bound how deep they go (GET /users: `page × page_size` ≤ `DEEPEST_NUMBERED_ROW`): a
numbered page skips every row before it, so page 5,000 of a million users reads 500,000
index entries, while a cursor page reads only its own rows; a deeper page is a 400
naming `page` that points to `after`. Its
`total` is exact up to `EXACT_COUNT_UP_TO` rows; above that it is PostgreSQL's planner
estimate and the answer says so with `X-Total-Is-Estimate: true`, because counting a
million rows on every request costs more than the page itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode
from uuid import UUID

import flask_smorest
from flask import request
from marshmallow import ValidationError, fields, missing
from webargs.flaskparser import FlaskParser

from db.queries import Count

EXACT_COUNT_UP_TO = 1_000
# The last row a numbered page of a bounded list may reach (page 100 of 100 rows).
DEEPEST_NUMBERED_ROW = 10_000
CURSOR_ARGUMENT = "after"
# The longest cursor made here (a users' one) is about 110 characters; the bound keeps
# a forged one small enough that decoding it cannot recurse deeply or take long.
MAX_CURSOR_LENGTH = 256
MAX_CURSOR_PART_LENGTH = 64
_CURSOR_TEXT = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH}}}")
_BIGINT = re.compile(r"-?[0-9]{1,19}")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BIGINT_RANGE = range(-(2**63), 2**63)
# The response the list views document for a bad `after` (flask-smorest's named one).
BAD_CURSOR = "BAD_REQUEST"

NEXT_PAGE_HEADERS = {
    "Link": {
        "description": 'The next page while more rows follow: `<URL>; rel="next"`, the URL'
        " carrying `after`",
        "schema": {"type": "string"},
    },
    "X-Next-Cursor": {
        "description": "The value of `after` that asks for the next page",
        "schema": {"type": "string"},
    },
    "X-Total-Is-Estimate": {
        "description": f"`true` when X-Pagination's total is above {EXACT_COUNT_UP_TO:,}"
        " and so the planner's estimate",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


class CursorParser(FlaskParser):
    """webargs' parser, except that an error naming `after` is a 400: a cursor is not a
    value to correct (422) but an opaque token that did not come from this service."""

    def handle_error(self, error, req, schema, *, error_status_code, error_headers) -> NoReturn:
        """Abort with flask-smorest's error body: 400 when `after` is named, else as asked."""
        names_cursor = any(
            isinstance(messages, dict) and CURSOR_ARGUMENT in messages
            for messages in error.messages.values()
        )
        status = 400 if names_cursor else error_status_code
        super().handle_error(
            error, req, schema, error_status_code=status, error_headers=error_headers
        )


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose paginated views may answer a cursor request:
    those mark their pagination parameters `by_cursor`, and get no X-Pagination."""

    ARGUMENTS_PARSER = CursorParser()

    def _set_pagination_metadata(self, page_params, result, headers):
        if getattr(page_params, "by_cursor", False):
            return result, headers
        return super()._set_pagination_metadata(page_params, result, headers)

    def _document_pagination_metadata(self, spec, resp_doc):
        super()._document_pagination_metadata(spec, resp_doc)
        resp_doc.setdefault("headers", {}).update(NEXT_PAGE_HEADERS)


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque token for a row's sort key."""
    text = json.dumps([v.isoformat() if isinstance(v, date) else str(v) for v in values])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


class Cursor(fields.String):
    """The `after` argument: a cursor from a previous answer, decoded into the sort key
    of the row it names, each part a string read by the matching parser (which raises
    ValueError for anything it does not accept)."""

    def __init__(self, *parsers: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parsers = parsers

    def _deserialize(self, value, attr, data, **kwargs) -> tuple:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return tuple(
                parse(part) for parse, part in zip(self.parsers, self._parts(text), strict=True)
            )
        except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as error:
            raise ValidationError(
                "not a cursor of this list: pass the X-Next-Cursor of a previous answer"
            ) from error

    def _parts(self, text: str) -> list[str]:
        """The strings a cursor holds, once its shape is checked (ValueError otherwise)."""
        if not _CURSOR_TEXT.fullmatch(text):
            raise ValueError("not URL-safe base64 of a cursor's length")
        parts = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not (
            isinstance(parts, list)
            and len(parts) == len(self.parsers)
            and all(isinstance(p, str) and len(p) <= MAX_CURSOR_PART_LENGTH for p in parts)
        ):
            raise ValueError("not a list of this list's sort key parts")
        return parts


def aware_datetime(text: str) -> datetime:
    """A datetime with its UTC offset, as cursors carry them."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def uuid_text(text: str) -> UUID:
    """A UUID in the form cursors carry it (lower-case, hyphenated)."""
    if not _CANONICAL_UUID.fullmatch(text):
        raise ValueError(text)
    return UUID(text)


def bigint_text(text: str) -> int:
    """A bigint written in ASCII digits (int() alone also takes '١' or '1_0')."""
    if not _BIGINT.fullmatch(text) or int(text) not in BIGINT_RANGE:
        raise ValueError(text)
    return int(text)


def iso_date(text: str) -> date:
    """A calendar date as `YYYY-MM-DD`, the form cursors carry."""
    if len(text) != 10:
        raise ValueError(text)
    return date.fromisoformat(text)


def refuse_page_with_cursor(arguments: dict, original: Any) -> None:
    """`after` starts where a previous page ended: a `page` number beside it is an error."""
    page = original.get("page")
    if (
        arguments.get(CURSOR_ARGUMENT) is not None
        and page is not missing
        and page not in (None, "1")
    ):
        raise ValidationError({CURSOR_ARGUMENT: ["use either 'after' or 'page', not both"]})


def answer(
    pagination: Any,
    after: tuple | None,
    fetch: Callable[[int, int, tuple | None], tuple[list[dict], bool]],
    count: Callable[[], Count],
    sort_key: Callable[[dict], Sequence[Any]],
    deepest: int | None = None,
) -> tuple[list[dict], dict[str, str]]:
    """One page and its paging headers. `fetch(limit, offset, after)` reads the rows
    (a cursor page starts after `after`, a numbered page at its offset); while more
    follow, the next page's link; for numbered pages the total that X-Pagination
    reports (`count` is not called for the page that holds the last row). With
    `deepest`, a numbered page reaching past that row is refused (400 naming `page`)."""
    if after is None and deepest is not None:
        refuse_deep_page(pagination.page, pagination.page_size, deepest)
    offset = 0 if after is not None else (pagination.page - 1) * pagination.page_size
    rows, more = fetch(pagination.page_size, offset, after)
    headers: dict[str, str] = {}
    if more and rows:
        cursor = encode_cursor(sort_key(rows[-1]))
        headers["Link"] = f'<{_next_page_url(cursor)}>; rel="next"'
        headers["X-Next-Cursor"] = cursor
    pagination.by_cursor = after is not None
    if pagination.by_cursor:
        pagination.item_count = len(rows)
        return rows, headers
    # A page that holds the list's last row (or the first page of an empty list) gives
    # the total without counting.
    ends_the_list = not more and (rows or offset == 0)
    total = Count(offset + len(rows), exact=True) if ends_the_list else count()
    pagination.item_count = total.value
    if not total.exact:
        headers["X-Total-Is-Estimate"] = "true"
    return rows, headers


def refuse_deep_page(page: int, page_size: int, deepest: int) -> None:
    """Abort with a 400 naming `page` when the page reaches past row `deepest`."""
    if page * page_size > deepest:
        message = (
            f"numbered pages end at row {deepest:,} (page × page_size): use"
            " after=<cursor> to go further, the X-Next-Cursor of the previous page"
        )
        flask_smorest.abort(400, message=message, errors={"query": {"page": [message]}})


def _next_page_url(cursor: str) -> str:
    query = [(name, value) for name, value in request.args.items(multi=True)]
    kept = [(name, value) for name, value in query if name not in ("page", "after")]
    return f"{request.path}?{urlencode([*kept, ('after', cursor)])}"
