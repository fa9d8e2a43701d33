"""Paging of the list endpoints: numbered pages with a bounded count, or cursors.

Every list answers, while more rows follow, with `Link: <…?after=CURSOR…>; rel="next"`
and the same cursor in `X-Next-Cursor`: walking a whole list means following that link
until it is absent. A cursor page starts right after the last row seen, read from an
index, so the millionth row costs what the first does, and rows created meanwhile are
neither skipped nor repeated.

Numbered pages (`page`, `page_size`) keep working with the `X-Pagination` header. Its
`total` is exact up to `EXACT_COUNT_UP_TO` rows; above that it is PostgreSQL's planner
estimate and the answer says so with `X-Total-Is-Estimate: true`, because counting a
million rows on every request costs more than the page itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import flask_smorest
from flask import request
from marshmallow import ValidationError, fields, missing

from db.queries import Count

EXACT_COUNT_UP_TO = 1_000

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


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose paginated views may answer a cursor request:
    those mark their pagination parameters `by_cursor`, and get no X-Pagination."""

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
    of the row it names, each part read by the matching parser."""

    def __init__(self, *parsers: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parsers = parsers

    def _deserialize(self, value, attr, data, **kwargs) -> tuple:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parts = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not isinstance(parts, list) or len(parts) != len(self.parsers):
                raise ValueError(parts)
            return tuple(parse(part) for parse, part in zip(self.parsers, parts, strict=True))
        except (ValueError, TypeError, binascii.Error) as error:
            raise ValidationError(
                "not a cursor of this list: pass the X-Next-Cursor of a previous answer"
            ) from error


def aware_datetime(text: str) -> datetime:
    """A datetime with its UTC offset, as cursors carry them."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def refuse_page_with_cursor(arguments: dict, original: Any) -> None:
    """`after` starts where a previous page ended: a `page` number beside it is an error."""
    page = original.get("page")
    if arguments.get("after") is not None and page is not missing and page not in (None, "1"):
        raise ValidationError({"after": ["use either 'after' or 'page', not both"]})


def answer(
    pagination: Any,
    after: tuple | None,
    fetch: Callable[[int, int, tuple | None], tuple[list[dict], bool]],
    count: Callable[[], Count],
    sort_key: Callable[[dict], Sequence[Any]],
) -> tuple[list[dict], dict[str, str]]:
    """One page and its paging headers. `fetch(limit, offset, after)` reads the rows
    (a cursor page starts after `after`, a numbered page at its offset); while more
    follow, the next page's link; for numbered pages the total that X-Pagination
    reports (`count` is not called for the page that holds the last row)."""
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


def _next_page_url(cursor: str) -> str:
    query = [(name, value) for name, value in request.args.items(multi=True)]
    kept = [(name, value) for name, value in query if name not in ("page", "after")]
    return f"{request.path}?{urlencode([*kept, ('after', cursor)])}"
