"""Users as the API returns them, built straight from repository rows.

GET /users answers up to 100 users a page; dumping each through `UserSchema` field by
field cost more than the query (about 60 µs a user). `user_json` gives the same dict
for a row of `repositories.users.COLUMNS`: each field of the schema converted as its
marshmallow field would (a UUID as its text, a date or datetime in ISO 8601, a list
as a list, None as None). The converters are chosen from the schema's own fields when
this module is imported, so a field added to `UserSchema` is served here too, and a
field of a kind not handled here stops the import instead of being served wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any
from uuid import UUID

from marshmallow import fields

from api.schemas import UserSchema


def _as_is(value: Any) -> Any:
    return value


def _text(value: str) -> str:
    return value if type(value) is str else str(value)


def _uuid(value: UUID) -> str:
    return str(value)


def _iso(value: date) -> str:
    return value.isoformat()


def _list(value: Iterable[Any]) -> list:
    return [None if item is None else _text(item) for item in value]


# Most specific kinds first: DateTime is not a Date, but check the exact kinds anyway.
_CONVERTERS: tuple[tuple[type[fields.Field], Callable[[Any], Any]], ...] = (
    (fields.UUID, _uuid),
    (fields.DateTime, _iso),
    (fields.Date, _iso),
    (fields.String, _text),
)


def _converter(field: fields.Field) -> Callable[[Any], Any]:
    if isinstance(field, fields.DateTime) and field.format not in (None, "iso", "iso8601"):
        raise TypeError(f"user_json: {field.name} is dumped in format {field.format!r}")
    if isinstance(field, fields.List):
        if type(field.inner) is not fields.String:
            raise TypeError(f"user_json: list field {field.name} does not hold strings")
        return _list
    for kind, convert in _CONVERTERS:
        if type(field) is kind:
            return convert
    raise TypeError(f"user_json: no converter for {type(field).__name__} ({field.name})")


def _plan(schema: UserSchema) -> tuple[tuple[str, str, Callable[[Any], Any]], ...]:
    """(key in the answer, key in the row, converter) for each field the schema dumps."""
    return tuple(
        (field.data_key or name, field.attribute or name, _converter(field))
        for name, field in schema.dump_fields.items()
    )


_PLAN = _plan(UserSchema())


def user_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """The dict `UserSchema().dump(row)` gives, built without marshmallow."""
    answer = {}
    for key, attribute, convert in _PLAN:
        if attribute in row:
            value = row[attribute]
            answer[key] = None if value is None else convert(value)
    return answer


def users_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`user_json` of each row, in order."""
    return [user_json(row) for row in rows]
