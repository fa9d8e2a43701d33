"""Templates rendered in Jinja2's sandbox with strict variables (pure: no I/O).

A template has a subject, a text and optionally an HTML body. They may use the
variables of `VARIABLES` and nothing else: an unknown name, a syntax error, an attribute
starting with `_` (the way out of a sandbox), a runtime error on sample data, or an
empty result is refused with the field and the line (`TemplateProblem`). HTML bodies
are autoescaped; the subject is one line (runs of whitespace become one space).

Templates are a small language on purpose: output, `if`/`elif`/`else`, comparisons,
`+` and `-`, the filters of `FILTERS`, the methods of `METHODS`, numbers up to
`MAX_NUMBER`. No loops, no `*` or `**`, no macros: the sandbox stops escapes, not a
template that would take minutes or gigabytes to render; these limits do.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from domain.occasions import Occasion

VARIABLES = (
    "first_name",
    "last_name",
    "full_name",
    "occasion_date",
    "years",
    "city",
    "country",
    "unsubscribe_url",
)
FIELDS = ("subject", "text", "html")
_SAMPLE = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "full_name": "Ada Lovelace",
    "occasion_date": date(2027, 12, 10),
    "years": 12,
    "city": "London",
    "country": "GB",
    "unsubscribe_url": "https://greetings.example.com/unsubscribe/sample-token",
}


MAX_SOURCE_LENGTH = 20_000  # characters per field
MAX_NUMBER = 10_000
FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "float",
        "int",
        "last",
        "length",
        "lower",
        "replace",
        "round",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "wordcount",
    }
)
METHODS = frozenset({"strftime", "isoformat", "upper", "lower", "title", "capitalize", "strip"})
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Add,
    nodes.Sub,
    nodes.Concat,
    nodes.Call,
    nodes.Keyword,
    nodes.Tuple,
    nodes.List,
)


@dataclass(frozen=True)
class Template:
    """The sources of one template; `html` None when it has no HTML body."""

    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class TemplateProblem(Exception):
    """Why a template cannot be used: the field, the line (when known) and what."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.field}{where}: {self.message}"


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _sandbox(autoescape: bool) -> SandboxedEnvironment:
    """Jinja2's sandbox with strict variables and no globals (range, lipsum, cycler…):
    a template sees its variables only."""
    environment = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, finalize=_finalize
    )
    environment.globals.clear()
    return environment


_PLAIN = _sandbox(autoescape=False)
_HTML = _sandbox(autoescape=True)


def _environment(field: str) -> SandboxedEnvironment:
    return _HTML if field == "html" else _PLAIN


@lru_cache(maxsize=512)
def _compiled(field: str, source: str):
    """A template compiled once per source (the worker renders the same few often)."""
    return _environment(field).from_string(source)


def built_in(occasion: Occasion) -> Template:
    """The occasion's default wording as a template: what is sent when nobody edited it."""

    def jinja(text: str) -> str:
        return text.replace("{", "{{ ").replace("}", " }}")

    return Template(jinja(occasion.default_subject), jinja(occasion.default_text))


def variables_for(
    first_name: str,
    last_name: str,
    occasion_date: date,
    original_date: date,
    city: str | None,
    country: str | None,
    unsubscribe_url: str = "",
) -> dict[str, Any]:
    """What a template sees for one greeting: `years` counts from the original date."""
    return {
        "first_name": first_name,
        "last_name": last_name,
        "full_name": f"{first_name} {last_name}".strip(),
        "occasion_date": occasion_date,
        "years": occasion_date.year - original_date.year,
        "city": city,
        "country": country,
        "unsubscribe_url": unsubscribe_url,
    }


def render(template: Template, variables: dict[str, Any]) -> Rendered:
    """The template applied to one greeting's variables; TemplateProblem if it fails."""
    subject = " ".join(_render_field("subject", template.subject, variables).split())
    text = _render_field("text", template.text, variables)
    html = None
    if template.html is not None:
        html = _render_field("html", template.html, variables)
    return Rendered(subject, text, html)


def _render_field(field: str, source: str, variables: dict[str, Any]) -> str:
    try:
        return _compiled(field, source).render(variables)
    except TemplateSyntaxError as error:
        raise TemplateProblem(field, error.message or "does not parse", error.lineno) from None
    except TemplateError as error:  # undefined names, the sandbox's SecurityError
        raise TemplateProblem(field, str(error), _template_line(error)) from None
    except Exception as error:
        raise TemplateProblem(
            field, f"{type(error).__name__}: {error}", _template_line(error)
        ) from None


def _template_line(error: BaseException) -> int | None:
    """The template line the error arose on (Jinja2 rewrites tracebacks to point there)."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == "<template>"
    ]
    return lines[-1] if lines else None


def check(template: Template) -> None:
    """Refuse what could not be sent as written: TemplateProblem naming field and line."""
    for field in FIELDS:
        source = getattr(template, field)
        if source is None:
            continue
        _check_source(field, source)
    rendered = render(template, _SAMPLE)
    for field in FIELDS:
        value = getattr(rendered, field)
        if value is not None and not value.strip():
            raise TemplateProblem(field, "renders empty")


def _check_source(field: str, source: str) -> None:
    """Parse, then look at every name, attribute and construct the template uses."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise TemplateProblem(field, f"is longer than {MAX_SOURCE_LENGTH} characters")
    environment = _environment(field)
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as error:
        raise TemplateProblem(field, error.message or "does not parse", error.lineno) from None
    unknown = meta.find_undeclared_variables(tree) - set(VARIABLES)
    for name in tree.find_all(nodes.Name):
        if name.name in unknown:
            known = ", ".join(VARIABLES)
            raise TemplateProblem(
                field, f"unknown variable {name.name!r}; known: {known}", name.lineno
            )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attribute = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
        if isinstance(attribute, str) and attribute.startswith("_"):
            raise TemplateProblem(field, f"may not use the attribute {attribute!r}", node.lineno)
    for node in tree.find_all(nodes.Node):
        problem = _construct_problem(node)
        if problem:
            raise TemplateProblem(field, problem, getattr(node, "lineno", None))


def _construct_problem(node: nodes.Node) -> str | None:
    """Why the language of templates does not include `node`, or None."""
    if not isinstance(node, _ALLOWED_NODES):
        return f"may not use {type(node).__name__.lower()} (no loops, macros, * or **)"
    if isinstance(node, nodes.Filter) and node.name not in FILTERS:
        return f"may not use the filter {node.name!r}; allowed: {', '.join(sorted(FILTERS))}"
    if isinstance(node, nodes.Call):
        called = node.node
        if not (isinstance(called, nodes.Getattr) and called.attr in METHODS):
            return f"may call only the methods {', '.join(sorted(METHODS))}"
    number = isinstance(node, nodes.Const) and isinstance(node.value, int | float)
    if number and abs(node.value) > MAX_NUMBER:
        return f"numbers may not exceed {MAX_NUMBER}"
    return None


def _constant(node: nodes.Node) -> object:
    return node.value if isinstance(node, nodes.Const) else None
