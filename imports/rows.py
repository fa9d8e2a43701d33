"""Reading an import body, a chunk at a time, into rows of text fields (pure).

CSV: a header row naming the fields (any order, each once), then one user per row.
NDJSON: one JSON object per line. Both name the same fields (FIELDS); values stay text
here and are checked in the database, set-based (imports/sync.py). Problems of shape
(an unknown or repeated column, a line that is not a JSON object, bad UTF-8, too many
rows) stop the import with `BodyProblem` naming the row and field.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterable, Iterator

from repositories.user_imports import FIELDS

MAX_FIELD_LENGTH = 1000


class BodyProblem(ValueError):
    """The body cannot be read as an import: where (row 0: the header) and what."""

    def __init__(self, row: int, field: str, message: str) -> None:
        super().__init__(f"row {row}, {field}: {message}")
        self.row = row
        self.field = field
        self.message = message


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The body's text, line by line, decoded as UTF-8 without holding it whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    line_number = 0
    try:
        for chunk in chunks:
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                line_number += 1
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise BodyProblem(line_number + 1, "body", "not UTF-8 text") from None
    if pending:
        yield pending


def _text(value: object, row: int, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BodyProblem(row, field, "must be text")
    return _checked(str(value), row, field)


def _cell(values: list[str], place: int | None, row: int, field: str) -> str | None:
    """A CSV row's text for one field (None: empty or not a column of the file)."""
    if place is None or not (text := values[place]):
        return None
    return _checked(text, row, field)


def _checked(text: str, row: int, field: str) -> str:
    """`text`, unless it is too long for a field or holds a NUL character."""
    if len(text) > MAX_FIELD_LENGTH or "\x00" in text:
        raise BodyProblem(row, field, f"must be text of at most {MAX_FIELD_LENGTH} characters")
    return text


def csv_rows(chunks: Iterable[bytes], max_rows: int) -> Iterator[tuple[str | None, ...]]:
    """The rows of a CSV body with a header, as FIELDS-ordered tuples (None: empty)."""
    reader = csv.reader(_lines(chunks), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise BodyProblem(0, "header", "the body is empty: send a header row first")
        columns = [name.strip() for name in header]
        _check_header(columns)
        # Each field's column, or None when the header leaves it out.
        places = [(columns.index(name) if name in columns else None, name) for name in FIELDS]
        for number, values in enumerate(reader, start=1):
            if number > max_rows:
                raise BodyProblem(number, "body", f"more than {max_rows} rows")
            if len(values) != len(columns):
                raise BodyProblem(
                    number, "row", f"has {len(values)} values for {len(columns)} columns"
                )
            yield tuple([_cell(values, place, number, name) for place, name in places])
    except csv.Error as error:
        raise BodyProblem(reader.line_num, "row", f"not CSV: {error}") from None


def _check_header(columns: list[str]) -> None:
    unknown = [name for name in columns if name not in FIELDS]
    if unknown:
        raise BodyProblem(0, unknown[0], f"unknown column; known: {', '.join(FIELDS)}")
    repeated = {name for name in columns if columns.count(name) > 1}
    if repeated:
        raise BodyProblem(0, sorted(repeated)[0], "named twice")


def ndjson_rows(chunks: Iterable[bytes], max_rows: int) -> Iterator[tuple[str | None, ...]]:
    """The rows of an NDJSON body (blank lines skipped), as FIELDS-ordered tuples."""
    number = 0
    for line in _lines(chunks):
        if not line.strip():
            continue
        number += 1
        if number > max_rows:
            raise BodyProblem(number, "body", f"more than {max_rows} rows")
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            raise BodyProblem(number, "row", "not a JSON object (truncated?)") from None
        if not isinstance(item, dict):
            raise BodyProblem(number, "row", "not a JSON object")
        unknown = [name for name in item if name not in FIELDS]
        if unknown:
            raise BodyProblem(number, str(unknown[0])[:100], "unknown field")
        yield tuple(_text(item.get(name), number, name) for name in FIELDS)
